"""At-least-once from Kafka to Personalize: through a SIGKILL of `hub run`, through 20 s of 429s, and past the retry
budget (dead-lettered as `retries_exhausted`, committed, then delivered by `hub replay`).

Kafka (Segment JSON) → identity → mapping → PutEvents to local_personalize over HTTP. local_personalize is
where "none lost" is counted (by eventId). In the crash test the same events also go to a JSON Lines
file, which counts redeliveries: they may only come from the window the killed process had not committed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiokafka import AIOKafkaProducer

from connectors.sources.kafka import KafkaSource
from personalize_hub.config import parse_config
from personalize_hub.runtime import Hub

from local_personalize.settings import Settings
from local_personalize.store import Store
from tests.fixtures.kafka import GROUP_TIMEOUTS, committed_offsets, create_topic, read_jsonl, wait_until
from tests.fixtures.local_personalize import personalize_client
from tests.fixtures.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOTAL = 50_000
PARTITIONS = 4
USERS = 200
KILL_AFTER_DELIVERED = 8_000
INTERACTIONS_SCHEMA = json.dumps({
    "type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
    "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
               {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
               {"name": "EVENT_VALUE", "type": ["null", "float"]}],
})


def tracker(url: str) -> tuple[str, str]:
    """(interactions dataset ARN, trackingId) of a fresh dataset group on local_personalize."""
    control = personalize_client(url)
    name = f"alo-{uuid.uuid4().hex[:8]}"
    group = control.create_dataset_group(name=name)["datasetGroupArn"]
    schema = control.create_schema(name=name, schema=INTERACTIONS_SCHEMA)["schemaArn"]
    dataset = control.create_dataset(name=name, schemaArn=schema, datasetGroupArn=group,
                                     datasetType="Interactions")["datasetArn"]
    tracker_arn = control.create_event_tracker(name=name, datasetGroupArn=group)["eventTrackerArn"]
    deadline = time.monotonic() + 30
    while control.describe_event_tracker(eventTrackerArn=tracker_arn)["eventTracker"]["status"] != "ACTIVE":
        assert time.monotonic() < deadline, "event tracker never became ACTIVE"
        time.sleep(0.1)
    return dataset, control.describe_event_tracker(eventTrackerArn=tracker_arn)["eventTracker"]["trackingId"]


def stored_event_ids(store: Store, dataset_arn: str) -> set[str]:
    """The eventIds local_personalize stored for the dataset (it ignores a repeated eventId, docs/reference/personalize-api.md#putevents)."""
    return {event_id for rows in store.iter_interactions(dataset_arn, ("event_id",)) for (event_id,) in rows}


async def produce_clickstream(bootstrap: str, topic: str, total: int = TOTAL) -> dict[str, tuple[int, int]]:
    """Produce `total` Product Viewed events keyed by user; message id → (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=20)
    await producer.start()
    try:
        start = time.time() - 3600
        futures = []
        for i in range(total):
            user = f"user-{i % USERS}"
            message = {"type": "track", "event": "Product Viewed", "userId": user, "messageId": f"e{i}",
                       "timestamp": start + i * 0.01, "properties": {"product_id": f"p{i % 300}", "price": 2.5}}
            futures.append(await producer.send(topic, json.dumps(message).encode(), key=user.encode()))
        placed = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return {f"e{i}": (meta.partition, meta.offset) for i, meta in enumerate(placed)}


def start_hub(config_path: Path, cwd: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
           "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local")}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "personalize_hub.cli", "run", "--config", str(config_path)],
                                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


async def test_kill_9_mid_stream_loses_nothing_and_redelivers_only_the_uncommitted_window(
    kafka_bootstrap, unique_name, tmp_path, local_personalize_server
):
    topic, group = unique_name("alo"), unique_name("group")
    await create_topic(kafka_bootstrap, topic, partitions=PARTITIONS)
    dataset_arn, tracking_id = tracker(local_personalize_server.url)
    placement = await produce_clickstream(kafka_bootstrap, topic)

    delivered = tmp_path / "delivered.jsonl"
    config_path = tmp_path / "hub.yaml"
    config_path.write_text(yaml.safe_dump({
        "http": {"host": "127.0.0.1", "port": free_port()},
        "aws": {"region": "us-east-1", "personalize_endpoint_url": local_personalize_server.url},
        # Micro-batches of 1000: several settle and are committed before the kill at 8000 deliveries.
        "sources": [{"type": "kafka", "id": "clickstream", "bootstrap_servers": kafka_bootstrap, "topics": [topic],
                     "group_id": group, "max_batch_records": 1000, **GROUP_TIMEOUTS}],
        "identity": {"store": {"type": "sqlite", "path": str(tmp_path / "identity.sqlite3")}},
        "destinations": [
            {"type": "personalize_events", "id": "personalize", "tracking_id": tracking_id},
            {"type": "file", "id": "copy", "path": str(delivered), "kinds": ["interaction"]},
        ],
        "dead_letter": {"type": "file", "id": "dead_letter", "path": str(tmp_path / "dead-letter.jsonl")},
    }))
    log = tmp_path / "hub.log"

    first = start_hub(config_path, tmp_path, log)
    try:
        await wait_until(lambda: len(read_jsonl(delivered)) >= KILL_AFTER_DELIVERED or first.poll() is not None,
                         90, f"{KILL_AFTER_DELIVERED} deliveries")
        assert first.poll() is None, log.read_text()[-3000:]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    committed_at_kill = await committed_offsets(kafka_bootstrap, group, topic, PARTITIONS)
    committed_total = sum(offset or 0 for offset in committed_at_kill.values())
    assert 0 < committed_total < TOTAL, f"not killed mid-stream: {committed_at_kill}"

    # Read where the server keeps events, through its own store API.
    store = Store(Settings(data_dir=local_personalize_server.data_dir).db_path)
    second = start_hub(config_path, tmp_path, log)
    try:
        await wait_until(lambda: store.count_interactions(dataset_arn) >= TOTAL
                         or second.poll() is not None, 100, "every event in local_personalize", interval_secs=0.5)
        assert second.poll() is None, log.read_text()[-3000:]
    finally:
        second.terminate()
        second.wait(30)

    # None lost: every eventId reached local_personalize.
    stored = stored_event_ids(store, dataset_arn)
    store.close()
    assert stored == set(placement)
    # Duplicates only within the unacknowledged window: a redelivered event sits at or after its
    # partition's offset committed when the first process died.
    copies = Counter(line["eventId"] for line in read_jsonl(delivered))
    assert set(copies) == set(placement)
    redelivered = [message_id for message_id, count in copies.items() if count > 1]
    outside = [m for m in redelivered if placement[m][1] < (committed_at_kill[placement[m][0]] or 0)]
    assert outside == [], f"{len(outside)} events before the committed offset were delivered twice"
    assert sum(copies.values()) - TOTAL <= TOTAL - committed_total
    assert read_jsonl(tmp_path / "dead-letter.jsonl") == []


THROTTLE_SECS = 20
THROTTLED_TOTAL = 20_000
HELD_LIMIT = 2_000  # per partition
BATCH_RECORDS = 500


@pytest.fixture
async def throttling_proxy(local_personalize_server):
    """Forwards to local_personalize, except for THROTTLE_SECS after the first request: 429 ThrottlingException."""
    state: dict = {"until": None, "throttled": 0}
    session = aiohttp.ClientSession()

    async def forward(request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        state["until"] = state["until"] or time.monotonic() + THROTTLE_SECS
        if time.monotonic() < state["until"]:
            state["throttled"] += 1
            return web.json_response({"__type": "ThrottlingException", "message": "Rate exceeded"}, status=429,
                                     headers={"x-amzn-ErrorType": "ThrottlingException"})
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with session.request(request.method, local_personalize_server.url + request.path_qs,
                                   data=body, headers=headers) as answer:
            return web.Response(status=answer.status, body=await answer.read(),
                                headers={k: v for k, v in answer.headers.items()
                                         if k.lower() in ("content-type", "x-amzn-errortype", "x-amzn-requestid")})

    runner = web.ServerRunner(web.Server(forward))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state["url"] = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()
    await session.close()


async def test_twenty_seconds_of_throttling_lose_nothing_and_hold_a_bounded_window(
    kafka_bootstrap, unique_name, tmp_path, local_personalize_server, throttling_proxy, monkeypatch
):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # dummy credentials, never the metadata endpoint
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, os.environ.get(name) or "local")
    topic, group = unique_name("throttled"), unique_name("group")
    await create_topic(kafka_bootstrap, topic, partitions=2)
    dataset_arn, tracking_id = tracker(local_personalize_server.url)
    placement = await produce_clickstream(kafka_bootstrap, topic, THROTTLED_TOTAL)

    hub = Hub(parse_config({
        "aws": {"region": "us-east-1", "personalize_endpoint_url": throttling_proxy["url"]},
        "sources": [{"type": "kafka", "id": "clickstream", "bootstrap_servers": kafka_bootstrap, "topics": [topic],
                     "group_id": group, "max_batch_records": BATCH_RECORDS,
                     "max_held_records_per_partition": HELD_LIMIT, **GROUP_TIMEOUTS}],
        "identity": {"store": {"type": "memory"}},
        "destinations": [{"type": "personalize_events", "id": "personalize", "tracking_id": tracking_id}],
        "dead_letter": {"type": "file", "id": "dead_letter", "path": str(tmp_path / "dead-letter.jsonl")},
    }, {}))
    source: KafkaSource = hub.sources[0]  # type: ignore[assignment]
    store = Store(Settings(data_dir=local_personalize_server.data_dir).db_path)
    max_held, paused_seen = 0, False
    await hub.start()
    try:
        deadline = time.monotonic() + THROTTLE_SECS + 90
        while store.count_interactions(dataset_arn) < THROTTLED_TOTAL:
            assert time.monotonic() < deadline, f"stored {store.count_interactions(dataset_arn)} of {THROTTLED_TOTAL}"
            max_held = max(max_held, sum(flow.held for flow in source.flows.values()))
            paused_seen = paused_seen or bool(source._paused)
            await asyncio.sleep(0.1)
        stored = stored_event_ids(store, dataset_arn)
    finally:
        await hub.stop()
        store.close()
    assert throttling_proxy["throttled"] > 0
    assert stored == set(placement)
    # Bounded: the source paused its partitions instead of reading the whole topic into memory.
    assert paused_seen
    assert max_held <= 2 * (HELD_LIMIT + BATCH_RECORDS) < THROTTLED_TOTAL
    assert read_jsonl(tmp_path / "dead-letter.jsonl") == []


BUDGET_TOTAL = 40


async def test_records_throttled_past_the_retry_budget_are_dead_lettered_committed_and_replayed(
    kafka_bootstrap, unique_name, tmp_path, local_personalize_server, throttling_proxy, monkeypatch
):
    from personalize_hub.replay import ReplayFilter, read_dead_letter, replay

    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # dummy credentials, never the metadata endpoint
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, os.environ.get(name) or "local")
    topic, group = unique_name("budget"), unique_name("group")
    await create_topic(kafka_bootstrap, topic, partitions=2)
    dataset_arn, tracking_id = tracker(local_personalize_server.url)
    placement = await produce_clickstream(kafka_bootstrap, topic, BUDGET_TOTAL)
    throttling_proxy["until"] = time.monotonic() + 3600  # every PutEvents call throttled
    dead_letter = tmp_path / "dead-letter.jsonl"
    config = {
        "aws": {"region": "us-east-1", "personalize_endpoint_url": throttling_proxy["url"]},
        "sources": [{"type": "kafka", "id": "clickstream", "bootstrap_servers": kafka_bootstrap, "topics": [topic],
                     "group_id": group, **GROUP_TIMEOUTS}],
        "identity": {"store": {"type": "memory"}},
        "destinations": [{"type": "personalize_events", "id": "personalize", "tracking_id": tracking_id}],
        "dead_letter": {"type": "file", "id": "dead_letter", "path": str(dead_letter)},
        # Two sends per batch; a record still unsettled 2 s after its first emit is dead-lettered.
        "retry": {"base_delay_secs": 0.01, "max_delay_secs": 0.05, "max_attempts": 2, "max_elapsed_secs": 2},
    }
    hub = Hub(parse_config(config, {}))
    await hub.start()
    try:
        deadline = time.monotonic() + 120
        while sum(o or 0 for o in (await committed_offsets(kafka_bootstrap, group, topic, 2)).values()) < BUDGET_TOTAL:
            assert time.monotonic() < deadline, f"committed {await committed_offsets(kafka_bootstrap, group, topic, 2)}"
            await asyncio.sleep(0.2)
    finally:
        await hub.stop()
    records = read_jsonl(dead_letter)
    # One record per Kafka record, with its location and payload as received; nothing reached Personalize.
    assert sorted((r["source"]["partition"], r["source"]["offset"]) for r in records) == sorted(placement.values())
    assert {r["reason"] for r in records} == {"retries_exhausted"}
    assert all(json.loads(r["payload"])["messageId"] in placement for r in records)
    store = Store(Settings(data_dir=local_personalize_server.data_dir).db_path)
    try:
        assert stored_event_ids(store, dataset_arn) == set()

        throttling_proxy["until"] = 1e-9  # the cause is gone: in the past, so never throttled again
        again = Hub(parse_config(config, {}))
        await again.start_delivery()
        try:
            summary = await replay(again, read_dead_letter(dead_letter),
                                   ReplayFilter(reasons=frozenset({"retries_exhausted"})))
        finally:
            await again.stop()
        assert summary.outcomes == {"delivered": BUDGET_TOTAL}
        assert stored_event_ids(store, dataset_arn) == set(placement)
    finally:
        store.close()
