"""The debugger ring: bounded, newest first, filtered, and it wakes stream readers once per emit."""

from __future__ import annotations

import asyncio

from personalize_hub.console.ring import EventRing, SightingFilter


def add(ring: EventRing, n: int, **overrides) -> None:
    for i in range(n):
        values = dict(source="web", name="Product Viewed", user_id=f"u{i}", anonymous_id=None, raw={"i": i},
                      records=(), outcome="delivered", reason=None)
        values.update(overrides)
        ring.add(**values)


def test_keeps_only_the_newest_and_lists_them_newest_first():
    ring = EventRing(size=10)
    add(ring, 25)
    assert len(ring) == 10
    newest = ring.newest(100)
    assert [s.raw["i"] for s in newest] == list(range(24, 14, -1))
    assert ring.last_seq == 25 and newest[0].seq == 25


def test_filters_by_source_name_user_and_outcome_and_respects_limit_and_after():
    ring = EventRing(size=100)
    add(ring, 3)
    add(ring, 2, source="app", outcome="rejected", reason="missing_item_id", anonymous_id="anon-1", user_id=None)
    assert {s.source for s in ring.newest(10, SightingFilter(source="app"))} == {"app"}
    assert len(ring.newest(10, SightingFilter(outcome="rejected"))) == 2
    assert len(ring.newest(10, SightingFilter(user="anon-1"))) == 2
    assert [s.user_id for s in ring.newest(10, SightingFilter(user="u1"))] == ["u1"]
    assert ring.newest(10, SightingFilter(name="Order Completed")) == []
    assert len(ring.newest(1)) == 1
    assert [s.seq for s in ring.newest(10, after_seq=3)] == [5, 4]


async def test_wait_newer_wakes_on_notify_and_times_out_without():
    ring = EventRing(size=10)
    assert await ring.wait_newer(0, timeout_secs=0.01) is False

    async def later():
        await asyncio.sleep(0.01)
        add(ring, 1)
        ring.notify()

    task = asyncio.create_task(later())
    assert await ring.wait_newer(0, timeout_secs=5) is True
    await task
    assert await ring.wait_newer(0, timeout_secs=0) is True  # already newer: no wait
