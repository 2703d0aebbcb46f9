"""`hub run` as a user runs it: a real uvicorn process on loopback, Segment batches over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fixtures.hub_process import running_hub

ROOT = Path(__file__).parents[2]


@pytest.fixture
def hub_process(tmp_path):
    config = yaml.safe_load((ROOT / "examples" / "webhook-to-file.yaml").read_text())
    with running_hub(config, tmp_path, {"HUB_DATA_DIR": str(tmp_path), "SEGMENT_WRITE_KEY": "wk-test"}) as hub:
        yield hub.url, tmp_path


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_batch_with_a_malformed_event_over_real_http(hub_process):
    base, data_dir = hub_process
    batch = {"batch": [
        {"type": "track", "event": "Product Viewed", "userId": "u1", "messageId": "ok-1",
         "properties": {"product_id": "p1"}},
        {"type": "track", "userId": "u1", "messageId": "bad-1"},
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "messageId": "ok-2", "traits": {"plan": "pro"}},
    ]}
    response = httpx.post(f"{base}/v1/batch", json=batch, auth=("wk-test", ""))
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["rejected"]) == (2, 1)
    # The default mapping applies: the file holds PutEvents members and PutUsers records.
    written = read_lines(data_dir / "records.jsonl")
    delivered = {e.get("eventId") for e in written}
    assert "ok-1" in delivered and "bad-1" not in delivered
    assert {"userId": "u1", "properties": '{"plan":"pro"}'} in written  # identify ok-2: its traits
    (dead,) = [r for r in read_lines(data_dir / "dead-letter.jsonl") if r["source"]["message_id"] == "bad-1"]
    assert dead["reason"] == "missing_field" and dead["payload"] == batch["batch"][1]

    assert httpx.post(f"{base}/v1/batch", json=batch, auth=("wrong", "")).status_code == 401
    assert "hub_events_in_total" in httpx.get(f"{base}/metrics").text
