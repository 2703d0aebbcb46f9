"""The debugger ring: bounded, newest first, filtered, and it wakes stream readers once per emit."""

from __future__ import annotations

import asyncio

from hub.events import Event, EventKind, SourceRef
from personalize_hub.console.ring import EventRing, SightingFilter


def event(i: int, name: str = "Product Viewed", user_id: str | None = None, anonymous_id: str | None = None) -> Event:
    return Event(kind=EventKind.INTERACTION, source=SourceRef(source_id="web", message_id=f"m{i}"), timestamp=0.0,
                 name=name, user_id=user_id, anonymous_id=anonymous_id, raw={"i": i})


def add(ring: EventRing, n: int, source: str = "web", outcome: str = "delivered", reason: str | None = None,
        user_id: str | None = "u", anonymous_id: str | None = None) -> None:
    entries = []
    for i in range(ring.last_seq, ring.last_seq + n):
        e = event(i, user_id=f"{user_id}{i}" if user_id else None, anonymous_id=anonymous_id)
        entries.append((source, e, [], e.raw, outcome, reason))
    ring.extend(0.0, entries)


def test_keeps_only_the_newest_and_lists_them_newest_first():
    ring = EventRing(size=10)
    add(ring, 25)
    assert len(ring) == 10
    newest = ring.newest(100)
    assert [s.raw["i"] for s in newest] == list(range(24, 14, -1))
    assert newest[0].name == "Product Viewed" and newest[0].user_id == "u24" and newest[0].records() == []
    assert ring.last_seq == 25 and newest[0].seq == 25


def test_filters_by_source_name_user_and_outcome_and_respects_limit_and_after():
    ring = EventRing(size=100)
    add(ring, 3)
    add(ring, 2, source="app", outcome="rejected", reason="missing_item_id", anonymous_id="anon-1", user_id=None)
    assert {s.source for s in ring.newest(10, SightingFilter(source="app"))} == {"app"}
    assert len(ring.newest(10, SightingFilter(outcome="rejected"))) == 2
    assert len(ring.newest(10, SightingFilter(user="anon-1"))) == 2
    assert [s.user_id for s in ring.newest(10, SightingFilter(user="u1"))] == ["u1"]
    assert ring.newest(10, SightingFilter(user="u3")) == []  # the app events carry only an anonymousId
    assert ring.newest(10, SightingFilter(name="Order Completed")) == []
    assert len(ring.newest(1)) == 1
    assert [s.seq for s in ring.newest(10, after_seq=3)] == [5, 4]


async def test_wait_newer_wakes_on_notify_and_times_out_without():
    ring = EventRing(size=10)
    assert await ring.wait_newer(0, timeout_secs=0.01) is False

    async def later():
        await asyncio.sleep(0.01)
        add(ring, 1)

    task = asyncio.create_task(later())
    assert await ring.wait_newer(0, timeout_secs=5) is True
    await task
    assert await ring.wait_newer(0, timeout_secs=0) is True  # already newer: no wait


def test_the_tap_keeps_every_rejection_and_delivered_events_up_to_its_budget():
    from hub.connector import Outcome
    from personalize_hub.console.tap import ConsoleTap

    now = [0.0]
    ring = EventRing(size=1000)
    tap = ConsoleTap(ring, delivered_per_sec=10, clock=lambda: now[0])
    events = [event(i, user_id="u") for i in range(50)]
    outcomes = [Outcome.REJECTED if i % 10 == 0 else Outcome.DELIVERED for i in range(50)]
    tap(events, [], outcomes, {i: "bad" for i in range(0, 50, 10)}, {})
    kept = ring.newest(1000)
    assert sum(s.outcome == "rejected" for s in kept) == 5 and sum(s.outcome == "delivered" for s in kept) == 10
    assert tap.sampled_out == 35
    now[0] = 0.5  # half a second refills half the budget
    tap(events[:20], [], [Outcome.DELIVERED] * 20, {}, {})
    assert sum(s.outcome == "delivered" for s in ring.newest(1000)) == 15
    # Every event counts in the totals, kept or not.
    assert tap.totals()[("console_settled", "web", "delivered")] == 65
