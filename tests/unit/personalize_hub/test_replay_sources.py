"""Every source's dead-letter records replay as they were received; `hub replay` fails when records fail again."""

from __future__ import annotations

import json

import httpx
import yaml
from click.testing import CliRunner

from personalize_hub.cli import main
from personalize_hub.config import parse_config
from personalize_hub.ingest import build_app
from personalize_hub.replay import ReplayFilter, read_dead_letter, replay
from personalize_hub.runtime import Hub

WRITE_KEY = "w" * 32
MP_KEY, MP_SECRET = "k" * 32, "s" * 32
# Rejected by the default mapping (no item id), delivered once mapping is switched off: a fixable cause.
TRACK_WITHOUT_TYPE = {"userId": "u1", "event": "Product Viewed", "properties": {}, "messageId": "seg-1"}
MPARTICLE_BATCH = {
    "mpid": "8", "user_identities": {"customer_id": "u2"},
    "events": [{"event_type": "custom_event", "data": {
        "event_name": "Product Viewed", "custom_event_type": "other", "timestamp_unixtime_ms": 1_700_000_000_000,
        "source_message_id": "mp-1"}}],
}


def hub_config(tmp_path, *, mapping: bool) -> dict:
    return {
        "sources": [{"type": "segment_webhook", "id": "web", "write_keys": [WRITE_KEY]},
                    {"type": "mparticle_webhook", "id": "mp", "api_key": MP_KEY, "api_secret": MP_SECRET}],
        "destinations": [{"type": "file", "id": "out", "path": str(tmp_path / "out.jsonl")}],
        "dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl")},
        "identity": {"enabled": False}, "mapping": {"enabled": mapping},
    }


async def dead_letter_over_http(tmp_path) -> None:
    hub = Hub(parse_config(hub_config(tmp_path, mapping=True), {}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(hub)), base_url="http://hub") as client:
        await hub.start()
        track = await client.post("/v1/track", auth=(WRITE_KEY, ""), json=TRACK_WITHOUT_TYPE)
        batch = await client.post("/v2/events", auth=(MP_KEY, MP_SECRET), json=MPARTICLE_BATCH)
        await hub.stop()
    assert track.status_code == 400 and batch.json()["rejected"] == 1


async def test_segment_single_call_and_mparticle_records_replay_as_received(tmp_path):
    await dead_letter_over_http(tmp_path)
    records = list(read_dead_letter(tmp_path / "dlq.jsonl"))
    assert [(r["source"]["source_id"], r["reason"]) for r in records] == [
        ("web", "missing_item_id"), ("mp", "missing_item_id")]
    assert records[0]["source"]["call"] == "track"  # the route, since the payload has no `type`

    fixed = Hub(parse_config(hub_config(tmp_path, mapping=False), {}))
    await fixed.start_delivery()
    summary = await replay(fixed, records, ReplayFilter())
    await fixed.stop()
    assert summary.outcomes == {"delivered": 2} and summary.failed == 0
    delivered = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted((e["source"]["source_id"], e["call"], e["user_id"]) for e in delivered) == [
        ("mp", "custom_event", "u2"), ("web", "track", "u1")]


def test_replay_exits_non_zero_and_counts_records_that_fail_again(tmp_path):
    import asyncio

    asyncio.run(dead_letter_over_http(tmp_path))
    config_file = tmp_path / "hub.yaml"
    config_file.write_text(yaml.safe_dump(hub_config(tmp_path, mapping=True)))  # cause not fixed
    result = CliRunner().invoke(main, ["replay", "--config", str(config_file)])
    assert result.exit_code == 1, result.output
    assert "2 of 2 records failed again" in result.output
    assert "still rejected: missing_item_id x2" in result.output

    config_file.write_text(yaml.safe_dump(hub_config(tmp_path, mapping=False)))
    # The file now also holds the two records the failed replay appended: all four go through.
    result = CliRunner().invoke(main, ["replay", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    assert "delivered: 4" in result.output
