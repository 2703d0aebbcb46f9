"""The kafka source against the real broker: JSON and Avro in, poison records, commits, rebalances."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from connectors.formats import avro
from hub import telemetry
from personalize_hub.config import parse_config
from personalize_hub.runtime import Hub
from tests.fixtures.kafka import (
    DECODED_ONLY,
    committed_offsets,
    create_topic,
    kafka_source,
    produce,
    read_jsonl,
    track,
    wait_until,
)
from tests.fixtures.schema_registry import schema_registry  # noqa: F401 - fixture
from tests.fixtures.services import free_port

pytestmark = pytest.mark.integration

DELIVERY_TIMEOUT_SECS = 60


def hub_for(source: dict, tmp_path, name: str = "out", **sections) -> Hub:
    return Hub(parse_config({
        "sources": [source],
        "destinations": sections.pop("destinations", [{"type": "file", "id": "out", "path": str(tmp_path / f"{name}.jsonl")}]),
        "dead_letter": {"type": "file", "path": str(tmp_path / f"{name}-dlq.jsonl")},
        **DECODED_ONLY,
        **sections,
    }, {}))


def delivered_ids(path) -> list[str]:
    return [line["source"]["message_id"] for line in read_jsonl(path)]


async def test_segment_json_round_trip_commits_to_the_end(kafka_bootstrap, unique_name, tmp_path):
    topic, group = unique_name("json"), unique_name("group")
    await create_topic(kafka_bootstrap, topic, partitions=2)
    singles = [json.dumps(track(f"m{i}", user=f"u{i % 7}")).encode() for i in range(300)]
    batched = json.dumps({"batch": [track("b1"), track("b2")], "context": {"sessionId": "s-9"}}).encode()
    await produce(kafka_bootstrap, topic, [*singles, batched], keys=[f"u{i % 7}".encode() for i in range(301)])

    hub = hub_for(kafka_source(kafka_bootstrap, topic, group), tmp_path)
    await hub.start()
    try:
        await wait_until(lambda: len(read_jsonl(tmp_path / "out.jsonl")) >= 302, DELIVERY_TIMEOUT_SECS, "302 events")
        await wait_until(lambda: _lag(topic) == 0, 10, "consumer lag 0")
    finally:
        await hub.stop()
    lines = read_jsonl(tmp_path / "out.jsonl")
    assert sorted(delivered_ids(tmp_path / "out.jsonl")) == sorted([f"m{i}" for i in range(300)] + ["b1", "b2"])
    (b1,) = [line for line in lines if line["source"]["message_id"] == "b1"]
    assert b1["session_id"] == "s-9" and b1["source"]["source_id"] == "kafka"
    offsets = await committed_offsets(kafka_bootstrap, group, topic, 2)
    per_partition = Counter(line["source"]["partition"] for line in lines)
    # Every record's offset is committed: 301 records over two partitions (the batch record holds two events).
    assert sum(offsets.values()) == 301 and set(per_partition) == {0, 1}


def _lag(topic: str) -> float | None:
    """The consumer lag gauge summed over the topic's partitions (None before it is reported)."""
    values = [sample.value for metric in telemetry.CONSUMER_LAG.collect() for sample in metric.samples
              if sample.labels["partition"].startswith(f"{topic}-")]
    return sum(values) if values else None


AVRO_SCHEMA = {
    "type": "record", "name": "Track", "namespace": "shop",
    "fields": [
        {"name": "type", "type": "string"}, {"name": "event", "type": "string"},
        {"name": "messageId", "type": "string"}, {"name": "userId", "type": "string"},
        {"name": "timestamp", "type": "long"},
        {"name": "properties", "type": {"type": "map", "values": ["null", "string", "double"]}},
    ],
}


async def test_avro_in_the_confluent_wire_format_through_the_real_registry_client(
    kafka_bootstrap, unique_name, tmp_path, schema_registry  # noqa: F811
):
    topic, group = unique_name("avro"), unique_name("group")
    await create_topic(kafka_bootstrap, topic, partitions=1)
    # The producer side is Confluent's own serializer, registering through its own client.
    client = SchemaRegistryClient({"url": schema_registry.url})
    serializer = AvroSerializer(client, json.dumps(AVRO_SCHEMA))
    context = SerializationContext(topic, MessageField.VALUE)
    values = [serializer({"type": "track", "event": "Product Viewed", "messageId": f"a{i}", "userId": f"u{i}",
                          "timestamp": 1_700_000_000_000 + i, "properties": {"product_id": f"p{i}", "price": 1.5}},
                         context) for i in range(50)]
    values.insert(25, b"\x00\x00\x00\x03\xe7not registered")  # schema id 999: unknown to the registry
    await produce(kafka_bootstrap, topic, values)

    source = kafka_source(kafka_bootstrap, topic, group, format="avro", schema_registry_url=schema_registry.url)
    hub = hub_for(source, tmp_path)
    await hub.start()
    try:
        await wait_until(lambda: len(read_jsonl(tmp_path / "out.jsonl")) >= 50, DELIVERY_TIMEOUT_SECS, "50 events")
        await wait_until(lambda: read_jsonl(tmp_path / "out-dlq.jsonl"), 10, "the dead letter")
    finally:
        await hub.stop()
    lines = read_jsonl(tmp_path / "out.jsonl")
    assert [line["source"]["message_id"] for line in lines] == [f"a{i}" for i in range(50)]
    assert lines[7]["properties"] == {"product_id": "p7", "price": 1.5}
    assert lines[7]["timestamp"] == pytest.approx(1_700_000_000.007)
    (dead,) = read_jsonl(tmp_path / "out-dlq.jsonl")
    assert (dead["reason"], dead["source"]["offset"]) == ("unknown_schema", 25)
    # One fetch per schema id, however many records name it.
    assert schema_registry.state.requests["GET /schemas/ids/1"] == 1
    assert (await committed_offsets(kafka_bootstrap, group, topic, 1))[0] == 51


async def test_avro_with_a_local_avsc(kafka_bootstrap, unique_name, tmp_path):
    topic, group = unique_name("avsc"), unique_name("group")
    await create_topic(kafka_bootstrap, topic)
    schema_path = tmp_path / "track.avsc"
    schema_path.write_text(json.dumps(AVRO_SCHEMA))
    parsed = avro.load_schema(schema_path)
    await produce(kafka_bootstrap, topic, [avro.encode(parsed, {
        "type": "track", "event": "Product Added", "messageId": f"l{i}", "userId": "u", "timestamp": 1_700_000_000_000,
        "properties": {}}) for i in range(5)])
    hub = hub_for(kafka_source(kafka_bootstrap, topic, group, format="avro", avro_schema=str(schema_path)), tmp_path)
    await hub.start()
    try:
        await wait_until(lambda: len(read_jsonl(tmp_path / "out.jsonl")) >= 5, DELIVERY_TIMEOUT_SECS, "5 events")
    finally:
        await hub.stop()
    assert delivered_ids(tmp_path / "out.jsonl") == [f"l{i}" for i in range(5)]


async def test_a_poison_record_is_dead_lettered_while_its_neighbours_are_delivered(
    kafka_bootstrap, unique_name, tmp_path
):
    topic, group = unique_name("poison"), unique_name("group")
    await create_topic(kafka_bootstrap, topic)
    values = [json.dumps(track("before")).encode(), b"\x00\xff{not json", json.dumps({"type": "track"}).encode(),
              json.dumps(track("after")).encode()]
    await produce(kafka_bootstrap, topic, values)
    hub = hub_for(kafka_source(kafka_bootstrap, topic, group), tmp_path)
    await hub.start()
    try:
        await wait_until(lambda: len(read_jsonl(tmp_path / "out.jsonl")) >= 2, DELIVERY_TIMEOUT_SECS, "2 events")
        await wait_until(lambda: len(read_jsonl(tmp_path / "out-dlq.jsonl")) >= 2, 10, "2 dead letters")
        await wait_until(lambda: hub.sources[0].flows and all(f.committed == 4 for f in hub.sources[0].flows.values()),
                         10, "the commit past the poison")
    finally:
        await hub.stop()
    assert delivered_ids(tmp_path / "out.jsonl") == ["before", "after"]
    dead = read_jsonl(tmp_path / "out-dlq.jsonl")
    assert [(d["reason"], d["source"]["partition"], d["source"]["offset"]) for d in dead] == [
        ("invalid_json", 0, 1), ("missing_identity", 0, 2)]
    assert dead[1]["payload"] == {"type": "track"}
    assert (await committed_offsets(kafka_bootstrap, group, topic, 1))[0] == 4


async def test_nothing_is_committed_while_delivery_fails_and_a_restart_delivers_everything(
    kafka_bootstrap, unique_name, tmp_path
):
    topic, group = unique_name("settle"), unique_name("group")
    await create_topic(kafka_bootstrap, topic, partitions=2)
    await produce(kafka_bootstrap, topic, [json.dumps(track(f"s{i}", user=f"u{i}")).encode() for i in range(200)],
                  keys=[f"u{i}".encode() for i in range(200)])
    # First run: the only destination is a Kafka cluster that is not there, so nothing settles.
    unreachable = {"type": "kafka_topic", "id": "down", "bootstrap_servers": f"127.0.0.1:{free_port()}",
                   "topic": "nowhere", "enable_idempotence": False}
    failing = hub_for(kafka_source(kafka_bootstrap, topic, group), tmp_path, "first", destinations=[unreachable],
                      # The runner gives up fast (2 sends); the source's time budget outlasts this run.
                      retry={"max_attempts": 2, "base_delay_secs": 0.05, "max_elapsed_secs": 60})
    await failing.start()
    try:
        await wait_until(lambda: sum(f.held for f in failing.sources[0].flows.values()) == 200, 30, "200 held records")
        await wait_until(lambda: _retried(failing), 15, "a redelivery")
    finally:
        await failing.stop()
    assert await committed_offsets(kafka_bootstrap, group, topic, 2) == {0: None, 1: None}

    # Second run, same group, a working destination: every record arrives.
    working = hub_for(kafka_source(kafka_bootstrap, topic, group), tmp_path, "second")
    await working.start()
    try:
        await wait_until(lambda: len(read_jsonl(tmp_path / "second.jsonl")) >= 200, DELIVERY_TIMEOUT_SECS, "200 events")
    finally:
        await working.stop()
    assert sorted(delivered_ids(tmp_path / "second.jsonl")) == sorted(f"s{i}" for i in range(200))
    assert sum((await committed_offsets(kafka_bootstrap, group, topic, 2)).values()) == 200


async def test_fetch_limits_below_one_record_still_deliver_every_record_in_order(kafka_bootstrap, unique_name, tmp_path):
    # Kafka returns a first record batch whole even when it is larger than the fetch limits: no partition stalls.
    topic, group = unique_name("small-fetch"), unique_name("group")
    await create_topic(kafka_bootstrap, topic, partitions=2)
    values = [json.dumps(track(f"f{i}", user=f"u{i % 5}", padding="x" * 1500)).encode() for i in range(200)]
    await produce(kafka_bootstrap, topic, values, keys=[f"u{i % 5}".encode() for i in range(200)])
    hub = hub_for(kafka_source(kafka_bootstrap, topic, group, fetch_max_bytes=1024, max_partition_fetch_bytes=1024),
                  tmp_path)
    await hub.start()
    try:
        await wait_until(lambda: len(read_jsonl(tmp_path / "out.jsonl")) >= 200, DELIVERY_TIMEOUT_SECS, "200 events")
    finally:
        await hub.stop()
    ids = delivered_ids(tmp_path / "out.jsonl")
    assert sorted(ids) == sorted(f"f{i}" for i in range(200))
    for user in range(5):  # one key, one partition: in the order produced
        assert [i for i in ids if int(i[1:]) % 5 == user] == [f"f{i}" for i in range(user, 200, 5)]


def _retried(hub: Hub) -> bool:
    return any(sample.value >= 1 for metric in telemetry.SEND_GIVEUPS.collect() for sample in metric.samples
               if sample.labels.get("destination") == "down")


async def test_two_hubs_in_one_group_split_the_partitions_and_lose_nothing(kafka_bootstrap, unique_name, tmp_path):
    topic, group = unique_name("rebalance"), unique_name("group")
    await create_topic(kafka_bootstrap, topic, partitions=4)
    total, half = 4000, 2000
    values = [json.dumps(track(f"r{i}", user=f"u{i % 97}")).encode() for i in range(total)]
    keys = [f"u{i % 97}".encode() for i in range(total)]
    await produce(kafka_bootstrap, topic, values[:half], keys[:half])
    # Small micro-batches and a low hold limit keep work in flight while the group rebalances.
    source = kafka_source(kafka_bootstrap, topic, group, max_batch_records=20, max_held_records_per_partition=40)
    first = hub_for(source, tmp_path, "first", destinations=[
        {"type": "file", "id": "out", "path": str(tmp_path / "first.jsonl"), "fsync": True}])
    second = hub_for(source, tmp_path, "second", destinations=[
        {"type": "file", "id": "out", "path": str(tmp_path / "second.jsonl"), "fsync": True}])
    await first.start()
    try:
        await wait_until(lambda: len(read_jsonl(tmp_path / "first.jsonl")) >= 100, DELIVERY_TIMEOUT_SECS, "first events")
        await second.start()
        try:
            await wait_until(lambda: second.sources[0].flows, DELIVERY_TIMEOUT_SECS, "the second hub's partitions")
            # Produced after the split: whatever the second hub owns, it has work of its own.
            await produce(kafka_bootstrap, topic, values[half:], keys[half:])

            def union() -> set[str]:
                return {*delivered_ids(tmp_path / "first.jsonl"), *delivered_ids(tmp_path / "second.jsonl")}

            await wait_until(lambda: len(union()) >= total, 90, "every event")
            assert first.sources[0].flows, "the first hub lost every partition"
        finally:
            await second.stop()
    finally:
        await first.stop()
    ids = delivered_ids(tmp_path / "first.jsonl") + delivered_ids(tmp_path / "second.jsonl")
    assert set(ids) == {f"r{i}" for i in range(total)}
    assert delivered_ids(tmp_path / "second.jsonl"), "the rebalance gave the second hub no work"
    # Redelivery is bounded by what was held uncommitted when partitions moved (40 per partition + a batch).
    assert len(ids) - total <= 4 * (40 + 20)
    assert sum((await committed_offsets(kafka_bootstrap, group, topic, 4)).values()) == total
