"""Identity stitching over the memory and SQLite stores (the Redis run is tests/integration/test_identity_redis.py)."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hub.errors import RetryableError
from hub.events import EventKind
from hub.identity import IdentityRecord, MemoryIdentityStore, Session, Versioned, Write
from hub.identity.rules import MAX_LINKS, MAX_SESSIONS
from hub.identity.sqlite_store import SqliteIdentityStore
from hub.identity.store import RecordCache, storage_key

from .identity_suite import *  # noqa: F403 - the shared rule suite runs against each store
from .identity_suite import ev, stage_for, stitch


class Clock:
    """A settable clock for record expiry (TTL is wall-clock time, unlike the rules)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
async def make_store(request, tmp_path):
    """Fresh stores; `shared=True` is another handle on the first store's data (a second process)."""
    stores = []
    files = itertools.count()

    def make(shared: bool = False):
        if request.param == "memory":
            store = stores[0] if shared else MemoryIdentityStore()
        else:
            first = shared or not stores
            path = tmp_path / ("first.sqlite3" if first else f"other-{next(files)}.sqlite3")
            store = SqliteIdentityStore(path, ttl_secs=3600)
        stores.append(store)
        return store

    yield make
    for store in {id(s): s for s in stores}.values():
        await store.close()


async def test_expired_records_start_afresh_and_do_not_block_writes(tmp_path):
    for clock in (Clock(), Clock()):
        for store in (MemoryIdentityStore(ttl_secs=60, clock=clock),
                      SqliteIdentityStore(tmp_path / f"{id(clock)}.sqlite3", ttl_secs=60, clock=clock)):
            stage = stage_for(store)
            (first,) = await stitch(stage, [ev("v1", 0, anon="a1", user="u1")])
            clock.now += 61
            (second,) = await stitch(stage_for(store), [ev("v2", 10, anon="a1")])
            assert second[0] is None  # the link expired with its record
            # The stage that cached the old version saves over the expired one: refused, reloaded, saved.
            (third,) = await stitch(stage, [ev("v3", 20, anon="a1")])
            assert third[1] == second[1]
            await store.close()


async def test_an_unreadable_record_starts_afresh():
    store = MemoryIdentityStore()
    store._rows["a:a1"] = (3, b"not json", float("inf"))
    (result,) = await stitch(stage_for(store), [ev("v1", 0, anon="a1", user="u1")])
    assert result[0] == "u1"
    assert (await store.load(["a:a1"]))["a:a1"].version == 4


async def test_sqlite_runs_in_wal_mode_and_opens_its_file_only_when_used(tmp_path):
    path = tmp_path / "nested" / "identity.sqlite3"
    store = SqliteIdentityStore(path, ttl_secs=60)
    assert not path.exists()
    await store.save([Write("a:x", 0, IdentityRecord(links=((1.0, "u1"),)))])
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        (key, version) = db.execute("SELECT key, version FROM identity").fetchone()
    assert (key, version) == (storage_key("a:x"), 1) and key.startswith("hub:identity:")


async def test_sqlite_makes_new_files_with_small_pages_and_keeps_the_pages_of_older_ones(tmp_path):
    older = tmp_path / "older.sqlite3"
    with sqlite3.connect(older) as db:  # a file made before: SQLite's default page size
        db.execute("CREATE TABLE identity (key TEXT PRIMARY KEY, version INTEGER NOT NULL, value BLOB NOT NULL, "
                   "expires_at REAL NOT NULL)")
        default_page_bytes = db.execute("PRAGMA page_size").fetchone()[0]
    record = IdentityRecord(links=((1.0, "u1"),))
    for path in (tmp_path / "new.sqlite3", older):
        store = SqliteIdentityStore(path, ttl_secs=60)
        await store.save([Write("a:x", 0, record)])
        assert (await store.load(["a:x"]))["a:x"] == Versioned(1, record)
        await store.close()
    page_bytes = {}
    for path in (tmp_path / "new.sqlite3", older):
        with sqlite3.connect(path) as db:
            page_bytes[path.name] = db.execute("PRAGMA page_size").fetchone()[0]
    assert page_bytes == {"new.sqlite3": 1024, "older.sqlite3": default_page_bytes}


async def test_sqlite_hands_errors_back_and_outlives_a_cancelled_caller(tmp_path):
    store = SqliteIdentityStore(tmp_path / "thread.sqlite3", ttl_secs=60)
    record = IdentityRecord(links=((1.0, "u1"),))

    def fail() -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(RetryableError, match="database is locked"):
        await store._run(fail)
    slow = asyncio.ensure_future(store._run(time.sleep, 0.05))
    await asyncio.sleep(0.01)
    slow.cancel()  # its call still runs; its outcome is dropped
    await store.save([Write("a:x", 0, record)])
    assert (await store.load(["a:x"]))["a:x"] == Versioned(1, record)
    await store.close()


async def test_compare_and_set_refuses_a_stale_version_and_returns_the_current(tmp_path):
    for store in (MemoryIdentityStore(), SqliteIdentityStore(tmp_path / "cas.sqlite3", ttl_secs=60)):
        record = IdentityRecord(links=((1.0, "u1"),))
        assert await store.save([Write("k", 0, record)]) == {}
        assert await store.save([Write("k", 0, IdentityRecord(links=((1.0, "u2"),)))]) == {"k": Versioned(1, record)}
        assert await store.save([Write("k", 1, IdentityRecord(links=((1.0, "u3"),))), Write("new", 5, record)]) == {
            "new": Versioned(0, None)}
        assert (await store.load(["k", "missing"])) == {
            "k": Versioned(2, IdentityRecord(links=((1.0, "u3"),))), "missing": Versioned(0, None)}
        await store.close()


def test_the_cache_is_bounded_and_keeps_the_newest_version():
    cache = RecordCache(2)
    cache.put("a", Versioned(2, None))
    cache.put("a", Versioned(1, None))  # a save that finished after a newer one: ignored
    assert cache.get("a").version == 2
    cache.put("a", Versioned(0, None), from_store=True)  # what the store says wins (e.g. expired)
    assert cache.get("a").version == 0
    cache.put("b", Versioned(1, None))
    cache.get("a")
    cache.put("c", Versioned(1, None))  # evicts the least recently used: b
    assert cache.get("b") is None and len(cache) == 2


async def test_only_four_sessions_are_remembered_per_key():
    store = MemoryIdentityStore()
    stage = stage_for(store, idle_timeout_secs=10)
    await stitch(stage, [ev(f"v{i}", 100 * i, anon="a1") for i in range(6)])
    record = (await store.load(["a:a1"]))["a:a1"].record
    assert [s.opened_by for s in record.sessions] == ["v5", "v4", "v3", "v2"]
    assert all(isinstance(s, Session) for s in record.sessions)


async def test_an_alias_without_both_ids_is_rejected():
    stage = stage_for(MemoryIdentityStore())
    (result,) = await stage.apply([ev("al", 0, user="u1", kind=EventKind.ALIAS, name=None)])
    assert result.reason == "missing_field" and "previousId" in result.message


async def test_sqlite_sweeps_expired_rows_away(tmp_path):
    clock = Clock()
    store = SqliteIdentityStore(tmp_path / "sweep.sqlite3", ttl_secs=60, clock=clock)
    await store.save([Write(f"k{i}", 0, IdentityRecord(links=((1.0, "u"),))) for i in range(10)])
    clock.now += 61
    await store.save([Write("fresh", 0, IdentityRecord(links=((1.0, "u"),)))])  # a save runs a sweep step at most once a second
    await store.close()
    with sqlite3.connect(tmp_path / "sweep.sqlite3") as db:
        assert [key for (key,) in db.execute("SELECT key FROM identity")] == [storage_key("fresh")]


async def test_sqlite_sweeps_activity_older_than_the_ttl_away(tmp_path):
    clock = Clock()  # the wall clock the sweep compares event times with
    store = SqliteIdentityStore(tmp_path / "activity.sqlite3", ttl_secs=60, clock=clock)
    await store.save([], {"lapsed": clock.now - 61, "recent": clock.now - 59})
    assert sorted([user async for user in store.active_users(0)]) == ["recent"]
    await store.close()


async def test_memory_trims_activity_older_than_the_ttl_when_it_purges():
    store = MemoryIdentityStore(ttl_secs=60)
    store._purge_at = 0  # purge on this save instead of after 10,000 keys
    await store.save([Write("k", 0, IdentityRecord())], {"lapsed": time.time() - 120, "recent": time.time()})
    assert [user async for user in store.active_users(0)] == ["recent"]


steps = st.lists(st.tuples(
    st.integers(min_value=1, max_value=2000),  # seconds since the person's previous event
    st.sampled_from(["a1", "a2", None]),  # anonymousId
    st.sampled_from(["u1", "u2", None]),  # userId
    st.sampled_from(["Product Viewed", "Signed Out", None]),  # None: an identify
    st.sampled_from([None, None, None, "src-1"]),  # a source session id now and then
), min_size=1, max_size=16)


@settings(max_examples=150, deadline=None)
@given(steps=steps)
async def test_any_batch_is_stitched_the_same_when_redelivered(steps):
    events, clock = [], {}
    for n, (gap, anon, user, name, source_session) in enumerate(steps):
        key = anon or user or "none"
        clock[key] = clock.get(key, 0) + gap  # event time moves forward per person
        kind = EventKind.IDENTIFY if name is None else EventKind.INTERACTION
        events.append(ev(f"m{n}", clock[key], anon=anon, user=user, name=name, kind=kind, session=source_session))
    store = MemoryIdentityStore()
    first = await stage_for(store, idle_timeout_secs=1800).apply(events)
    records = [v.record for v in (await store.load(list(store._rows))).values()]
    # The promise holds within the history a record keeps; a full history may have dropped what a replay needs.
    assume(all(len(r.sessions) < MAX_SESSIONS and len(r.links) < MAX_LINKS for r in records))
    again = await stage_for(store, idle_timeout_secs=1800).apply(events)
    assert again == first
    for result, event in zip(first, events, strict=True):
        if not isinstance(result, list):
            assert result.reason == "missing_identity" and not (event.anonymous_id or event.user_id)
            continue
        (out,) = result
        assert out.session_id and (event.user_id is None or out.user_id == event.user_id)
