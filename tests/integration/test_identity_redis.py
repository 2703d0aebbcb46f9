"""Identity stitching over a real Redis: the shared rule suite, plus keys, TTLs, scripts and outages."""

from __future__ import annotations

import time
import uuid

import pytest
import redis.asyncio as redis

from hub.connector import Outcome
from hub.delivery.dead_letter import DeadLetter
from hub.errors import RetryableError
from hub.identity import IdentityRecord, Versioned, Write
from hub.identity.redis_store import RedisIdentityStore
from hub.pipeline import Pipeline
from tests.fixtures.services import free_port
from tests.unit.hub.fakes import ListSink
from tests.unit.hub.identity_suite import *  # noqa: F403 - the shared rule suite, now against Redis
from tests.unit.hub.identity_suite import ago, ev, stage_for, stitch

pytestmark = pytest.mark.integration


@pytest.fixture
async def make_store(redis_url):
    """Stores in a namespace of their own; `shared=True` is a second client on the same keys (a second process)."""
    namespaces = [f"test-{uuid.uuid4().hex[:12]}"]
    stores = []

    def make(shared: bool = False, ttl_secs: int = 3600):
        if not shared and stores:
            namespaces.append(f"test-{uuid.uuid4().hex[:12]}")
        store = RedisIdentityStore(redis_url, ttl_secs=ttl_secs, namespace=namespaces[0 if shared else -1])
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


async def test_keys_are_prefixed_and_carry_the_ttl(make_store, redis_url):
    store = make_store(ttl_secs=120)
    await stitch(stage_for(store), [ev("v1", ago(10), anon="a1", user="u1")])
    client = redis.Redis.from_url(redis_url)
    try:
        keys = sorted([k async for k in client.scan_iter(f"hub:identity:{store.namespace}:*")])
        prefix = f"hub:identity:{store.namespace}:"
        record, active = f"{prefix}a:a1".encode(), f"{prefix}active".encode()
        device = f"{prefix}u:u1".encode()  # the user's login device, for its userId-only events
        assert keys == [record, active, device]
        for key in keys:
            assert 0 < await client.ttl(key) <= 120
        version, _, _ = (await client.get(record)).partition(b"|")
        assert version == b"1"
        assert await client.zrange(active, 0, -1) == [b"u1"]
    finally:
        await client.aclose()


async def test_activity_older_than_the_ttl_is_trimmed_in_the_save_pipeline(make_store, redis_url):
    store = make_store(ttl_secs=120)
    now = time.time()
    before = store.round_trips
    await store.save([Write("a:a1", 0, IdentityRecord())], {"stale": now - 600, "fresh": now - 10})
    assert store.round_trips - before == 1
    client = redis.Redis.from_url(redis_url)
    try:
        assert await client.zrange(f"hub:identity:{store.namespace}:active", 0, -1) == [b"fresh"]
    finally:
        await client.aclose()


async def test_a_script_unknown_to_redis_is_loaded_again(make_store):
    store = make_store()
    store._script_sha = "0" * 40  # as after a Redis restart or SCRIPT FLUSH: NOSCRIPT
    assert await store.save([Write("k", 0, IdentityRecord(links=((1.0, "u1"),)))]) == {}
    assert (await store.load(["k"]))["k"].record == IdentityRecord(links=((1.0, "u1"),))


async def test_one_save_writes_and_refuses_per_key_whatever_its_ids_hold(make_store):
    # The script gets the batch's values in one newline-joined argument: ids with newlines stay inside JSON.
    store = make_store()
    odd = IdentityRecord(links=((1.0, "u\n1|2"),))
    assert await store.save([Write("a:x\ny", 0, odd), Write("k", 0, IdentityRecord())]) == {}
    refused = await store.save([Write("a:x\ny", 0, IdentityRecord()), Write("k", 1, odd), Write("new", 3, odd)])
    assert refused == {"a:x\ny": Versioned(1, odd), "new": Versioned(0, None)}
    assert await store.load(["a:x\ny", "k"]) == {"a:x\ny": Versioned(1, odd), "k": Versioned(2, odd)}


async def test_an_unreachable_redis_is_retryable_and_the_pipeline_answers_retry():
    store = RedisIdentityStore(f"redis://127.0.0.1:{free_port()}/0", ttl_secs=60)
    with pytest.raises(RetryableError):
        await store.load(["a:a1"])
    pipeline = Pipeline([stage_for(store)], [], DeadLetter(ListSink()))
    report = await pipeline.emit([ev("v1", 0, anon="a1")])
    assert report.outcomes == [Outcome.RETRY]
    await store.close()
