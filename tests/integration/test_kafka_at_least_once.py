"""At-least-once through a crash: 50,000 events, `hub run` killed with SIGKILL mid-stream, then restarted.

Kafka (Segment JSON) → identity → mapping → PutEvents to local_personalize over HTTP, and the same events
to a JSON Lines file. local_personalize is where "none lost" is counted (by eventId); the file counts
redeliveries, which may only come from the window the killed process had not committed.
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

import pytest
import yaml
from aiokafka import AIOKafkaProducer

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
    """The eventIds local_personalize stored for the dataset (it ignores a repeated eventId, §3.1)."""
    return {event_id for rows in store.iter_interactions(dataset_arn, ("event_id",)) for (event_id,) in rows}


async def produce_clickstream(bootstrap: str, topic: str) -> dict[str, tuple[int, int]]:
    """Produce TOTAL Product Viewed events keyed by user; message id → (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=20)
    await producer.start()
    try:
        start = time.time() - 3600
        futures = []
        for i in range(TOTAL):
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
        return subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "--config", str(config_path)],
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
        "sources": [{"type": "kafka", "id": "clickstream", "bootstrap_servers": kafka_bootstrap, "topics": [topic],
                     "group_id": group, **GROUP_TIMEOUTS}],
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
