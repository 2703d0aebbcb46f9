"""One real round trip per service the suite relies on: Kafka, Redis, S3 (moto) and SMTP."""

from __future__ import annotations

import asyncio
import mailbox
from email.message import EmailMessage

import aiosmtplib
import boto3
import pytest
import redis.asyncio as aioredis
from aiobotocore.session import get_session
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration

# tansu joins a group in ~3 s; shorter timeouts than Kafka's defaults keep rebalances fast
# (docs/reference/platform.md#kafka-tansu).
GROUP_TIMEOUTS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500, "rebalance_timeout_ms": 6000}
RECEIVE_TIMEOUT_SECS = 30


def group_consumer(bootstrap: str, group: str, *topics: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **GROUP_TIMEOUTS,
    )


async def test_kafka_group_resumes_after_the_manually_committed_offset(kafka_bootstrap, unique_name):
    topic, group = unique_name("round-trip"), unique_name("group")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    # tansu has no idempotent producer (docs/reference/platform.md#kafka-tansu): idempotence stays off.
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for n in range(2):
            await producer.send_and_wait(
                topic, f"event-{n}".encode(), key=b"user-1", headers=[("source", b"test")]
            )
    finally:
        await producer.stop()

    partition = TopicPartition(topic, 0)
    first = group_consumer(kafka_bootstrap, group, topic)
    await first.start()
    try:
        record = await asyncio.wait_for(first.getone(), RECEIVE_TIMEOUT_SECS)
        assert (record.key, record.value, record.headers) == (
            b"user-1",
            b"event-0",
            (("source", b"test"),),
        )
        # Commit only the first record: the group must resume at the second one.
        await first.commit({partition: record.offset + 1})
        assert await first.committed(partition) == record.offset + 1
    finally:
        await first.stop()

    # The partition is assigned rather than subscribed: the start position still comes from the
    # group's committed offset, and the test skips tansu's slow rejoin (~11 s measured here).
    second = group_consumer(kafka_bootstrap, group)
    await second.start()
    second.assign([partition])
    try:
        resumed = await asyncio.wait_for(second.getone(), RECEIVE_TIMEOUT_SECS)
        assert (resumed.value, resumed.offset) == (b"event-1", record.offset + 1)
    finally:
        await second.stop()


async def test_redis_set_then_get_keeps_value_and_expiry(redis_url, unique_name):
    client = aioredis.from_url(redis_url)
    key = unique_name("hub-test")
    try:
        assert await client.set(key, b"\x00binary\xff", ex=60) is True
        assert await client.get(key) == b"\x00binary\xff"
        assert 0 < await client.ttl(key) <= 60
    finally:
        await client.delete(key)
        await client.aclose()


async def test_s3_object_put_by_boto3_reads_back_through_aiobotocore(
    aws_endpoint_url, aws_region, s3_bucket
):
    body = b'{"userId": "u1", "itemId": "i1"}\n' * 3
    s3 = boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region)
    s3.put_object(Bucket=s3_bucket, Key="input/part-0.jsonl", Body=body)
    assert s3.get_object(Bucket=s3_bucket, Key="input/part-0.jsonl")["Body"].read() == body

    async with get_session().create_client(
        "s3", endpoint_url=aws_endpoint_url, region_name=aws_region
    ) as async_s3:
        response = await async_s3.get_object(Bucket=s3_bucket, Key="input/part-0.jsonl")
        async with response["Body"] as stream:
            assert await stream.read() == body
        listing = await async_s3.list_objects_v2(Bucket=s3_bucket)
        assert [entry["Key"] for entry in listing["Contents"]] == ["input/part-0.jsonl"]


async def test_smtp_message_sent_lands_in_the_maildir(smtp_server, unique_name):
    subject = unique_name("recommendations")
    message = EmailMessage()
    message["From"] = "hub@example.test"
    message["To"] = "shopper@example.test"
    message["Subject"] = subject
    message.set_content("Empfehlungen für dich: item-1, item-2\n")

    await aiosmtplib.send(message, hostname=smtp_server.host, port=smtp_server.port)

    # aiosmtpd's Mailbox handler stores the message before answering 250, so it is there now.
    stored = [m for m in mailbox.Maildir(smtp_server.maildir, create=False) if m["Subject"] == subject]
    assert len(stored) == 1
    assert stored[0]["X-RcptTo"] == "shopper@example.test"
    assert stored[0].get_payload(decode=True).decode("utf-8") == "Empfehlungen für dich: item-1, item-2\n"
