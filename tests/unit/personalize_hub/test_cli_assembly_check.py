"""A mapping that does not fit the dataset schemas fails `hub check` as it fails `hub run` and `hub replay`:
every problem named, exit status 2, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from personalize_hub.cli import main

SCHEMA = {
    "type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
    "fields": [
        {"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
        {"name": "DEVICE", "type": ["null", "string"], "categorical": True},
    ],
}


def _config(tmp_path: Path, mapped_property: str) -> Path:
    schema = tmp_path / "interactions.avsc"
    schema.write_text(json.dumps(SCHEMA))
    config = tmp_path / "hub.yaml"
    config.write_text(f"""
schemas:
  interactions: {schema}
mapping:
  interactions:
    properties:
      {mapped_property}: ["properties.{mapped_property}"]
sources:
  - {{type: segment_webhook, id: web, write_keys: ["a-write-key"]}}
destinations:
  - {{type: file, id: out, path: "{tmp_path / 'out.jsonl'}"}}
dead_letter: {{type: file, id: dead_letter, path: "{tmp_path / 'dead-letter.jsonl'}"}}
""")
    (tmp_path / "dead-letter.jsonl").touch()  # `hub replay` needs one to read
    return config


@pytest.mark.parametrize("command", ["check", "run", "replay"])
def test_a_mapping_the_schema_lacks_is_a_config_error_in_every_command(tmp_path, command):
    result = CliRunner().invoke(main, [command, "--config", str(_config(tmp_path, "colour"))])
    assert result.exit_code == 2, result.output
    assert "mapping.interactions.properties.colour: not a field of the Interactions schema" in result.output
    assert "Traceback" not in result.output


def test_check_passes_a_mapping_the_schema_has(tmp_path):
    result = CliRunner().invoke(main, ["check", "--config", str(_config(tmp_path, "device"))])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: 1 source(s), 1 destination(s)")
