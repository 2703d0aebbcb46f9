"""hub replay: dead-letter records re-decoded and re-emitted; filters; still-bad ones dead-lettered again."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from personalize_hub.config import parse_config
from personalize_hub.replay import ReplayFilter, read_dead_letter, replay
from personalize_hub.runtime import Hub


def dead_record(message_id, payload, reason="invalid_input", time="2026-01-01T00:00:00.000+00:00", source="web"):
    return {"time": time, "reason": reason, "message": "m", "attempts": 1,
            "source": {"source_id": source, "message_id": message_id}, "payload": payload}


GOOD = {"type": "track", "event": "Product Viewed", "userId": "u", "messageId": "g1"}
BAD = {"type": "track", "userId": "u", "messageId": "b1"}


async def make_hub(tmp_path):
    config = parse_config({
        "sources": [{"type": "segment_webhook", "id": "web", "write_keys": ["k"]}],
        "destinations": [{"type": "file", "id": "out", "path": str(tmp_path / "out.jsonl")}],
        "dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl")},
        # Source behaviour only: events pass through unmapped, as in a hub forwarding to Kafka.
        "identity": {"enabled": False}, "mapping": {"enabled": False},
    }, {})
    hub = Hub(config)
    await hub.start_delivery()
    return hub


async def test_replay_delivers_fixed_records_and_dead_letters_the_rest_once(tmp_path):
    dlq = tmp_path / "dlq.jsonl"
    dlq.write_text("\n".join(json.dumps(r) for r in [
        dead_record("g1", GOOD), dead_record("b1", BAD), dead_record("x", GOOD, source="gone"),
    ]) + "\n")
    hub = await make_hub(tmp_path)
    summary = await replay(hub, read_dead_letter(dlq), ReplayFilter())
    await hub.stop()
    assert summary.read == 3 and summary.selected == 3
    assert summary.outcomes == {"delivered": 1, "rejected": 2}
    assert summary.reasons == {"missing_field": 1, "unknown_source": 1}
    delivered = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [e["source"]["message_id"] for e in delivered] == ["g1"]
    records = list(read_dead_letter(dlq))
    assert len(records) == 5  # the 3 originals, then the 2 still failing, appended once


async def test_filters_by_reason_and_time(tmp_path):
    records = [
        dead_record("a", GOOD, reason="throttled", time="2026-01-01T00:00:00+00:00"),
        dead_record("b", GOOD, reason="invalid_input", time="2026-01-02T00:00:00+00:00"),
        dead_record("c", GOOD, reason="invalid_input", time="2026-01-03T00:00:00+00:00"),
    ]
    selection = ReplayFilter(reasons=frozenset({"invalid_input"}), until=datetime(2026, 1, 3, tzinfo=timezone.utc))
    assert [r["source"]["message_id"] for r in records if selection.matches(r)] == ["b"]


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "dlq.jsonl"
    path.write_text(json.dumps(dead_record("a", GOOD)) + "\n" + '{"time": "2026')
    assert [r["source"]["message_id"] for r in read_dead_letter(path)] == ["a"]


async def test_a_kafka_record_dead_lettered_after_its_retry_budget_replays_whole(tmp_path):
    config = parse_config({
        "sources": [{"type": "kafka", "id": "clicks", "bootstrap_servers": "127.0.0.1:9", "topics": ["t"],
                     "group_id": "g"}],
        "destinations": [{"type": "file", "id": "out", "path": str(tmp_path / "out.jsonl")}],
        "dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl")},
        "identity": {"enabled": False}, "mapping": {"enabled": False},
    }, {})
    value = json.dumps({"batch": [GOOD, {**GOOD, "messageId": "g2"}]})  # the record as the source dead-lettered it
    record = dead_record("t/3/8", value, reason="retries_exhausted", source="clicks")
    record["source"].update(partition=3, offset=8)
    (tmp_path / "dlq.jsonl").write_text(json.dumps(record) + "\n")
    hub = Hub(config)
    await hub.start_delivery()
    summary = await replay(hub, read_dead_letter(tmp_path / "dlq.jsonl"), ReplayFilter())
    await hub.stop()
    assert summary.outcomes == {"delivered": 1}
    delivered = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(e["source"]["message_id"], e["source"]["offset"]) for e in delivered] == [("g1", 8), ("g2", 8)]
