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


async def test_the_recorder_counts_what_a_put_events_destination_delivered_once_its_message_settled():
    from connectors.destinations.personalize.events import PersonalizeEvents, PersonalizeEventsConfig
    from connectors.destinations.personalize.readiness import ReadinessRecorder
    from hub.connector import Context, Outcome
    from hub.delivery.dead_letter import DeadLetter
    from hub.delivery.retry import RetryPolicy
    from hub.delivery.runner import DestinationRunner
    from hub.errors import RetryableError
    from hub.events import Event, EventKind, SourceRef
    from hub.pipeline import Pipeline
    from tests.unit.hub.fakes import ListSink, RecordingDestination

    from .conftest import FakeIngestApi

    fast = RetryPolicy(base_delay_secs=0.001, max_delay_secs=0.002, max_attempts=3, max_elapsed_secs=2)
    personalize = PersonalizeEvents(PersonalizeEventsConfig(type="personalize_events", tracking_id="group-1"), Context())
    personalize._api = FakeIngestApi()
    flaky = RecordingDestination(lambda batch, call: RetryableError("503") if call <= 3 else None, id="webhook")
    runners = [DestinationRunner(d, d.config.batch_policy(), fast) for d in (personalize, flaky)]
    for runner in runners:
        await runner.start()
    store = MemoryReadiness()
    recorder = ReadinessRecorder(store)
    pipeline = Pipeline([], runners, DeadLetter(ListSink(), fast), recorder)
    viewed = Event(kind=EventKind.INTERACTION, source=SourceRef(source_id="web", message_id="m1"), timestamp=1.7e9,
                   name="Product Viewed", call="track", user_id="u1", session_id="s1", properties={"product_id": "p1"})
    first = await pipeline.emit([viewed])  # delivered to Personalize, RETRY overall: the source redelivers
    second = await pipeline.emit([viewed])
    for runner in runners:
        await runner.close()
    await recorder.close()
    assert (first.outcome, second.outcome) == (Outcome.RETRY, Outcome.DELIVERED)
    assert len(personalize._api.calls) == 2  # the same eventId twice: idempotent for Personalize ...
    report = await store.report("group-1")
    assert (report.interactions, report.items, report.event_types) == (1, 1, {"Product Viewed": 1})  # ... counted once
    assert not recorder.wants(flaky)
