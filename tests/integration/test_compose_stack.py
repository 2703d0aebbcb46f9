"""`docker compose up` without Docker: every service of docker-compose.yml run from its own command and env.

Compose resolves the file (`config --format json`: interpolation, anchors, defaults), then each service
runs as a local process: image-only services (Kafka, Redis, moto) are the ones scripts/test started,
service names in the environment become their loopback addresses, container paths (/app, /data,
/state) the repository and temporary folders, published ports free loopback ports. The test then
posts an event through the hub with the secret bootstrap generated and finds it in local_personalize,
and sees the worker answer a ping and beat keep its schedule.
"""

from __future__ import annotations

import glob
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from celery import Celery

from personalize_hub.bootstrap import read_env_file
from tests.fixtures.services import free_port
from tests.integration.test_compose import COMPOSE_BIN, COMPOSE_FILE, REPO_ROOT

BIN = Path(sys.executable).parent
IMAGE_ENTRYPOINT = ["hub"]  # the Dockerfile's ENTRYPOINT, checked below


def resolved_services() -> dict:
    """The services as `docker compose up` on a fresh machine would run them: no AWS or hub variables set."""
    fresh = {key: value for key, value in os.environ.items()
             if not key.startswith(("AWS_", "PERSONALIZE_", "SEGMENT_", "MPARTICLE_", "HUB_", "KAFKA_", "REDIS_"))}
    result = subprocess.run([str(COMPOSE_BIN), "-f", str(COMPOSE_FILE), "config", "--format", "json"],
                            capture_output=True, text=True, timeout=60, check=False, env=fresh)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


class Stack:
    """Maps container addresses and paths to this machine's, and owns the processes it starts."""

    def __init__(self, tmp: Path, kafka: str, redis_url: str, moto_url: str):
        self.tmp = tmp
        self.local_personalize_port = free_port()
        self.hub_port = free_port()
        self.addresses = {
            "kafka:9092": kafka,
            "redis://redis:6379/0": redis_url,
            "http://moto:5000": moto_url,
            "http://local-personalize:8001": f"http://127.0.0.1:{self.local_personalize_port}",
        }
        self.processes: dict[str, subprocess.Popen] = {}

    def path(self, value: str) -> str:
        for container, local in (("/app/", f"{REPO_ROOT}/"), ("/state", str(self.tmp / "state")),
                                 ("/data", str(self.tmp / "data"))):
            if value.startswith(container):
                return local + value[len(container):]
        return value

    def value(self, value: str) -> str:
        for container, local in self.addresses.items():
            value = value.replace(container, local)
        return self.path(value)

    def argv(self, name: str, service: dict) -> list[str]:
        argv = [*(service.get("entrypoint") or IMAGE_ENTRYPOINT), *(service.get("command") or [])]
        if argv[0] == "python":
            argv[0] = sys.executable
        elif (BIN / argv[0]).exists():
            argv[0] = str(BIN / argv[0])
        argv = [self.value(a) for a in argv]
        if name == "local_personalize":  # published port 8001 on 0.0.0.0 → a free loopback port
            argv = [{"0.0.0.0": "127.0.0.1", "8001": str(self.local_personalize_port)}.get(a, a) for a in argv]
            argv[argv.index("--data") + 1] = str(self.tmp / "local-personalize-data")
        return argv

    def environment(self, service: dict) -> dict[str, str]:
        env = {key: os.environ[key] for key in ("PATH", "LANG") if key in os.environ}
        # A container's: no home with AWS files, no instance role; only what compose passes.
        env.update(PYTHONPATH=str(REPO_ROOT), HOME=str(self.tmp), AWS_EC2_METADATA_DISABLED="true")
        for key, value in (service.get("environment") or {}).items():
            if value is not None:  # None: passed through from the host only when set there; here it is not
                env[key] = self.value(value)
        # The container serves on 0.0.0.0:8000, published on loopback: here, a free loopback port.
        env.update(HUB_HTTP_HOST="127.0.0.1", HUB_HTTP_PORT=str(self.hub_port), KAFKA_GROUP_ID=uuid.uuid4().hex)
        return env

    def start(self, name: str, service: dict) -> subprocess.Popen:
        for volume in service.get("volumes") or []:
            Path(self.path(volume["target"])).mkdir(parents=True, exist_ok=True)
        log = open(self.tmp / f"{name}.log", "wb")
        process = subprocess.Popen(self.argv(name, service), env=self.environment(service), cwd=self.tmp,
                                   stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def log(self, name: str, tail: int = 3000) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-tail:]

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_until(check, what: str, stack: Stack, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.processes[name].poll() is not None:
            pytest.fail(f"{name} exited {stack.processes[name].returncode}: {stack.log(name)}")
        try:
            if check():
                return
        except (httpx.TransportError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"{what} not within {timeout:.0f}s: {stack.log(name)}")


def test_the_image_entrypoint_is_the_hub_command():
    entrypoints = [line for line in (REPO_ROOT / "Dockerfile").read_text().splitlines() if line.startswith("ENTRYPOINT")]
    assert [json.loads(line.removeprefix("ENTRYPOINT")) for line in entrypoints] == [IMAGE_ENTRYPOINT]


def test_compose_up_gives_a_working_stack(tmp_path, kafka_bootstrap, redis_url, aws_endpoint_url):
    services = resolved_services()
    assert {"bootstrap", "hub", "worker", "beat", "local_personalize"} <= services.keys()
    for name in ("hub", "worker", "beat", "local_personalize", "redis"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    assert services["hub"]["depends_on"]["bootstrap"]["condition"] == "service_completed_successfully"
    for name in ("hub", "worker", "beat"):  # every piece of state on a volume
        assert "/state" in {v["target"] for v in services[name]["volumes"]}
    assert "/data" in {v["target"] for v in services["hub"]["volumes"]}
    assert "/data" in {v["target"] for v in services["local_personalize"]["volumes"]}

    stack = Stack(tmp_path, kafka_bootstrap, redis_url, aws_endpoint_url)
    try:
        stack.start("local_personalize", services["local_personalize"])
        lp_url = stack.addresses["http://local-personalize:8001"]
        wait_until(lambda: httpx.get(lp_url).status_code < 500, "local_personalize serving", stack, "local_personalize")
        for attempt in range(2):  # idempotent: the second run finds what the first made
            bootstrap = stack.start("bootstrap", services["bootstrap"])
            assert bootstrap.wait(120) == 0, stack.log("bootstrap")
            state = read_env_file(tmp_path / "state" / "personalize.env")
            if attempt == 0:
                first = state
        assert state == first and len(state["SEGMENT_WRITE_KEY"]) >= 32
        assert os.stat(tmp_path / "state" / "personalize.env").st_mode & 0o077 == 0

        for name in ("hub", "worker", "beat"):
            stack.start(name, services[name])
        hub_url = f"http://127.0.0.1:{stack.hub_port}"
        wait_until(lambda: httpx.get(f"{hub_url}/readyz").status_code == 200, "hub ready", stack, "hub")

        event = {"userId": "compose-user", "event": "Product Viewed", "messageId": "compose-1",
                 "properties": {"product_id": "p-compose"}}
        answer = httpx.post(f"{hub_url}/v1/track", json=event, auth=(state["SEGMENT_WRITE_KEY"], ""), timeout=30)
        assert answer.status_code == 200, answer.text  # answered only once PutEvents was accepted
        assert httpx.post(f"{hub_url}/v1/track", json=event, auth=("", "")).status_code == 401
        stored = []
        for path in glob.glob(str(tmp_path / "local-personalize-data" / "**" / "*.sqlite*"), recursive=True):
            if path.endswith((".sqlite", ".sqlite3", ".db")):
                with sqlite3.connect(path) as db:
                    stored += db.execute("SELECT user_id, item_id FROM interactions").fetchall()
        assert ("compose-user", "p-compose") in stored
        log = stack.log("hub", tail=1_000_000)
        assert "source segment (segment_webhook): /v1/track" in log and "destination interactions" in log
        assert "dummy" in log  # the local engine was signed with dummy credentials, and it was said

        app = Celery(broker=redis_url)
        wait_until(lambda: app.control.inspect(timeout=1).ping(), "worker answering a ping", stack, "worker", 90)
        wait_until(lambda: list((tmp_path / "state").glob("beat-schedule*")), "beat schedule", stack, "beat")
        assert stack.processes["beat"].poll() is None
    finally:
        stack.stop()
