"""The kafka source's own cost: records/s through decode, settle and commit, beside raw aiokafka getmany.

Both read the same topic of Segment JSON on the same broker in the same run. The source's `emit` settles
every event at once (no pipeline), so the figure is the ceiling the source leaves for identity, mapping
and delivery. Needs KAFKA_BOOTSTRAP (scripts/test starts tansu); run: `python bench/kafka_source.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from connectors.sources.kafka import KafkaSource, KafkaSourceConfig
from hub.connector import Context, EmitReport, Outcome

RECORDS = 200_000
PARTITIONS = 2
# tansu joins a group in ~3 s; short group timeouts keep the run short (docs/reference/platform.md#kafka-tansu).
GROUP_TIMEOUTS = {"session_timeout_secs": 6, "heartbeat_interval_secs": 0.5, "rebalance_timeout_secs": 6}


def message(i: int) -> bytes:
    return json.dumps({"type": "track", "event": "Product Viewed", "userId": f"u{i % 1000}", "messageId": f"m{i}",
                       "timestamp": "2024-05-01T12:00:00Z", "context": {"ip": "10.0.0.1", "userAgent": "bench"},
                       "properties": {"product_id": f"p{i % 5000}", "price": 12.5, "currency": "EUR"}}).encode()


async def fill_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=20)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, message(i)) for i in range(RECORDS)])
    finally:
        await producer.stop()


async def raw_rate(bootstrap: str, topic: str) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"raw-{uuid.uuid4().hex}",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                session_timeout_ms=6000, heartbeat_interval_ms=500, rebalance_timeout_ms=6000)
    await consumer.start()
    try:
        seen, started = 0, None
        while seen < RECORDS:
            for records in (await consumer.getmany(timeout_ms=200, max_records=1000)).values():
                started = started or time.perf_counter()
                seen += len(records)
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def source_rate(bootstrap: str, topic: str) -> float:
    settled = 0
    started: float | None = None
    done = asyncio.Event()

    async def emit(events, rejections) -> EmitReport:
        nonlocal settled, started
        started = started or time.perf_counter()
        settled += len(events) + len(rejections)
        if settled >= RECORDS:
            done.set()
        return EmitReport([Outcome.DELIVERED] * len(events), list(rejections))

    config = KafkaSourceConfig(type="kafka", id="bench", bootstrap_servers=bootstrap, topics=[topic],
                               group_id=f"src-{uuid.uuid4().hex}", **GROUP_TIMEOUTS)
    source = KafkaSource(config, Context())
    task = asyncio.create_task(source.run(emit))
    await done.wait()
    elapsed = time.perf_counter() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return settled / elapsed


async def main() -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        sys.exit("KAFKA_BOOTSTRAP is not set (a Kafka-compatible broker, e.g. tansu from scripts/test)")
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    await fill_topic(bootstrap, topic)
    raw = await raw_rate(bootstrap, topic)
    ours = await source_rate(bootstrap, topic)
    print(f"raw aiokafka getmany (anchor): {raw:>10,.0f} records/s")
    print(f"kafka source, decode+settle+commit: {ours:>10,.0f} records/s  ({ours / raw:.2f}x the anchor)")


if __name__ == "__main__":
    asyncio.run(main())
