"""The kafka_topic destination against the real broker: webhook → Kafka → hub, native events, dead letter."""

from __future__ import annotations

import json
from collections import defaultdict

import httpx
import pytest

from personalize_hub.config import parse_config
from personalize_hub.ingest import build_app
from personalize_hub.runtime import Hub
from tests.fixtures.kafka import (
    DECODED_ONLY,
    create_topic,
    kafka_source,
    produce,
    read_jsonl,
    read_topic,
    track,
    wait_until,
)

pytestmark = pytest.mark.integration

DELIVERY_TIMEOUT_SECS = 60


def topic_destination(bootstrap: str, topic: str, **fields) -> dict:
    # tansu refuses InitProducerId (docs/reference/platform.md#kafka-tansu): idempotence off against it.
    return {"type": "kafka_topic", "id": "to-kafka", "bootstrap_servers": bootstrap, "topic": topic,
            "enable_idempotence": False, **fields}


async def post_batches(hub: Hub, path: str, bodies: list[dict], auth: tuple[str, str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(hub)), base_url="http://hub") as client:
        return [await client.post(path, json=body, auth=auth) for body in bodies]


async def test_webhook_to_kafka_to_hub_keeps_raw_payloads_and_keys_by_user(kafka_bootstrap, unique_name, tmp_path):
    topic, group = unique_name("raw"), unique_name("group")
    await create_topic(kafka_bootstrap, topic, partitions=3)
    edge = Hub(parse_config({
        "sources": [{"type": "segment_webhook", "id": "web", "write_keys": ["wk"]}],
        "destinations": [topic_destination(kafka_bootstrap, topic)],
        "dead_letter": {"type": "file", "path": str(tmp_path / "edge-dlq.jsonl")},
        **DECODED_ONLY,  # an edge hub forwards raw events: the core hub does identity and mapping
    }, {}))
    await edge.start()
    try:
        bodies = [{"batch": [track(f"w{b}-{i}", user=f"user-{i % 5}", rank=i) for i in range(20)]} for b in range(5)]
        responses = await post_batches(edge, "/v1/batch", bodies, ("wk", ""))
    finally:
        await edge.stop()
    # The webhook answered only once the broker acknowledged (acks=all) every event.
    assert [r.status_code for r in responses] == [200] * 5
    records = await read_topic(kafka_bootstrap, topic, 100)
    partitions_of_user = defaultdict(set)
    for record in records:
        partitions_of_user[record.key].add(record.partition)
        assert dict(record.headers)["hub-message-id"] == json.loads(record.value)["messageId"].encode()
    assert len(records) == 100 and all(len(p) == 1 for p in partitions_of_user.values())
    assert set(partitions_of_user) == {f"user-{i}".encode() for i in range(5)}

    core = Hub(parse_config({
        "sources": [kafka_source(kafka_bootstrap, topic, group)],
        "destinations": [{"type": "file", "id": "out", "path": str(tmp_path / "out.jsonl")}],
        "dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl")},
        **DECODED_ONLY,
    }, {}))
    await core.start()
    try:
        await wait_until(lambda: len(read_jsonl(tmp_path / "out.jsonl")) >= 100, DELIVERY_TIMEOUT_SECS, "100 events")
    finally:
        await core.stop()
    lines = read_jsonl(tmp_path / "out.jsonl")
    assert sorted(line["source"]["message_id"] for line in lines) == sorted(f"w{b}-{i}" for b in range(5) for i in range(20))
    (sample,) = [line for line in lines if line["source"]["message_id"] == "w3-7"]
    assert (sample["user_id"], sample["properties"]["rank"], sample["name"]) == ("user-2", 7, "Product Viewed")


async def test_native_events_round_trip_through_a_topic(kafka_bootstrap, unique_name, tmp_path):
    topic, group = unique_name("native"), unique_name("group")
    source_topic = unique_name("native-in")
    await create_topic(kafka_bootstrap, topic)
    await create_topic(kafka_bootstrap, source_topic)
    await produce(kafka_bootstrap, source_topic, [json.dumps(track(f"n{i}", user="u-native")).encode() for i in range(10)])
    forwarder = Hub(parse_config({
        "sources": [kafka_source(kafka_bootstrap, source_topic, group)],
        "destinations": [topic_destination(kafka_bootstrap, topic, payload="event")],
        "dead_letter": {"type": "file", "path": str(tmp_path / "fwd-dlq.jsonl")},
        **DECODED_ONLY,
    }, {}))
    await forwarder.start()
    try:
        records = await read_topic(kafka_bootstrap, topic, 10, timeout_secs=DELIVERY_TIMEOUT_SECS)
    finally:
        await forwarder.stop()
    events = [json.loads(r.value) for r in records]
    assert [e["source"]["message_id"] for e in events] == [f"n{i}" for i in range(10)]
    assert events[0]["kind"] == "interaction" and events[0]["raw"]["messageId"] == "n0"
    assert {r.key for r in records} == {b"u-native"}

    reader = Hub(parse_config({
        "sources": [kafka_source(kafka_bootstrap, topic, unique_name("group"), format="native", id="again")],
        "destinations": [{"type": "file", "id": "out", "path": str(tmp_path / "out.jsonl")}],
        "dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl")},
        **DECODED_ONLY,
    }, {}))
    await reader.start()
    try:
        await wait_until(lambda: len(read_jsonl(tmp_path / "out.jsonl")) >= 10, DELIVERY_TIMEOUT_SECS, "10 events")
    finally:
        await reader.stop()
    first = read_jsonl(tmp_path / "out.jsonl")[0]
    assert (first["source"]["message_id"], first["source"]["source_id"], first["user_id"]) == ("n0", "again", "u-native")


async def test_the_dead_letter_in_a_kafka_topic(kafka_bootstrap, unique_name, tmp_path):
    topic, dead_topic, group = unique_name("dl-in"), unique_name("dead"), unique_name("group")
    await create_topic(kafka_bootstrap, topic)
    await create_topic(kafka_bootstrap, dead_topic)
    await produce(kafka_bootstrap, topic, [json.dumps(track("good")).encode(), b"{broken",
                                           json.dumps(track("good-2")).encode()])
    hub = Hub(parse_config({
        "sources": [kafka_source(kafka_bootstrap, topic, group)],
        # A destination that can only reject: it writes Personalize records (`payload: record`, the former
        # name of `encoding: personalize`) while the mapping is off, so every event is refused as `not_mapped`.
        "destinations": [topic_destination(kafka_bootstrap, unique_name("records"), payload="record")],
        "dead_letter": topic_destination(kafka_bootstrap, dead_topic, id="dead_letter"),
        **DECODED_ONLY,
    }, {}))
    await hub.start()
    try:
        records = await read_topic(kafka_bootstrap, dead_topic, 3, timeout_secs=DELIVERY_TIMEOUT_SECS)
    finally:
        await hub.stop()
    dead = sorted((json.loads(r.value) for r in records), key=lambda d: d["source"]["offset"])
    assert [(d["reason"], d["source"]["offset"]) for d in dead] == [
        ("not_mapped", 0), ("invalid_json", 1), ("not_mapped", 2)]
    assert dead[1]["payload"] == "{broken" and dead[0]["destination"] == "to-kafka"
    assert dead[0]["event"]["source"]["message_id"] == "good"
    # Keyed by the source message id; a record that never decoded is named by its location.
    assert sorted(r.key for r in records) == sorted([b"good", b"good-2", f"{topic}/0/1".encode()])
