"""Readiness counters: the same behaviour from the memory, SQLite and Redis stores."""

from __future__ import annotations

import uuid

import pytest

from connectors.destinations.personalize.readiness import MemoryReadiness, RedisReadiness, SqliteReadiness


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryReadiness()
    elif request.param == "sqlite":
        store = SqliteReadiness(tmp_path / "r.sqlite3")
        yield store
        await store.close()
    else:
        store = RedisReadiness(request.getfixturevalue("redis_url"))
        yield store
        await store.close()


async def test_counts_users_with_two_items_and_types(store):
    key = f"tracker-{uuid.uuid4().hex[:8]}"
    await store.record(key, [("u1", "i1", "view"), ("u2", "i1", "view"), (None, "i2", "view")])
    await store.record(key, [("u1", "i3", "purchase"), ("u1", "i3", "view")])
    report = await store.report(key)
    assert (report.interactions, report.users, report.users_with_two, report.items) == (5, 2, 1, 3)
    assert report.event_types == {"view": 4, "purchase": 1}
    assert not report.ready and "more interactions" in report.missing()[0]
    assert key in await store.keys()


async def test_ready_at_the_training_minimums(store):
    key = f"tracker-{uuid.uuid4().hex[:8]}"
    await store.record(key, [(f"u{i % 25}", f"i{i}", "view") for i in range(1000)])
    report = await store.report(key)
    assert report.users_with_two == 25 and report.ready and report.missing() == []
