"""Empty or blank credentials are a config error naming their path, in `hub check` and at `hub run`."""

from __future__ import annotations

import typing

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, SecretStr

from personalize_hub import registry
from personalize_hub.cli import main
from personalize_hub.config import HubConfig
from hub.secret import Secret, _not_blank

CONFIG = """
sources:
  - {type: segment_webhook, id: web, write_keys: ["${SEGMENT_WRITE_KEY}"]}
  - type: mparticle_webhook
    id: mp
    api_key: ${MPARTICLE_API_KEY}
    api_secret: "   "
destinations:
  - {type: webhook, id: hook, url: "https://example.com/hook", secret: "${WEBHOOK_SECRET}"}
  - {type: braze, id: braze, rest_url: "https://rest.iad-01.braze.com", api_key: "${BRAZE_API_KEY}"}
recommendations: {enabled: true, redis_url: "redis://127.0.0.1:1/0", api_keys: ["\\t"]}
"""
BLANK_PATHS = ["sources[0].write_keys[0]", "sources[1].api_key", "sources[1].api_secret",
               "destinations[0].secret", "destinations[1].api_key", "recommendations.api_keys[0]"]


@pytest.mark.parametrize("command", ["check", "run"])
def test_blank_secrets_fail_check_and_start_naming_every_path(tmp_path, command):
    config = tmp_path / "hub.yaml"
    config.write_text(CONFIG)
    env = {"SEGMENT_WRITE_KEY": "", "MPARTICLE_API_KEY": " ", "WEBHOOK_SECRET": "", "BRAZE_API_KEY": ""}
    result = CliRunner().invoke(main, [command, "--config", str(config)], env=env)
    assert result.exit_code == 2, result.output
    for path in BLANK_PATHS:
        assert f"{path}: Value error, is empty or whitespace" in result.output, path


def _unchecked_secrets(annotation: typing.Any, where: str) -> list[str]:
    """Places a SecretStr is accepted without the blank check: every credential must be a `Secret`."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        if base is SecretStr and any(getattr(m, "func", None) is _not_blank for m in metadata):
            return []
        return _unchecked_secrets(base, where)
    if annotation is SecretStr:
        return [where]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [p for name, f in annotation.model_fields.items()
                for p in _unchecked_secrets(f.rebuild_annotation(), f"{annotation.__name__}.{name}")]
    return [p for arg in typing.get_args(annotation) for p in _unchecked_secrets(arg, where)]


def test_every_credential_in_every_config_model_is_a_secret():
    models = [HubConfig, *(c.Config for c in {**registry.sources(), **registry.destinations()}.values())]
    assert [p for model in models for p in _unchecked_secrets(model, model.__name__)] == []
    assert _unchecked_secrets(Secret, "x") == [] and _unchecked_secrets(SecretStr, "bare") == ["bare"]
