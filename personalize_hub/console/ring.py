"""The live-event debugger's memory: a bounded ring of recent events and a wake-up for SSE readers.

Ingestion only appends references (the raw payload and the records already exist); redaction and
JSON encoding happen when somebody reads, so an attached console costs the hot path one tuple per event.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Sighting:
    """One input event as the debugger shows it: what arrived, what it became, and how it settled."""

    seq: int
    time: float  # epoch seconds when it settled
    source: str
    name: str | None
    user_id: str | None
    anonymous_id: str | None
    raw: Any
    records: tuple[Any, ...]
    outcome: str  # delivered | rejected | retry
    reason: str | None = None


@dataclass(frozen=True)
class SightingFilter:
    """What the debugger page asked for; empty fields match everything."""

    source: str | None = None
    name: str | None = None
    user: str | None = None  # userId or anonymousId
    outcome: str | None = None

    def matches(self, s: Sighting) -> bool:
        return ((not self.source or s.source == self.source)
                and (not self.name or s.name == self.name)
                and (not self.user or self.user in (s.user_id, s.anonymous_id))
                and (not self.outcome or s.outcome == self.outcome))


class EventRing:
    """The last `size` sightings of this process; `wait_newer` wakes stream readers once per emit."""

    def __init__(self, size: int):
        self._items: deque[Sighting] = deque(maxlen=size)
        self._seq = 0
        self._changed = asyncio.Event()

    @property
    def size(self) -> int:
        return self._items.maxlen or 0

    @property
    def last_seq(self) -> int:
        return self._seq

    def add(self, source: str, name: str | None, user_id: str | None, anonymous_id: str | None, raw: Any,
            records: tuple[Any, ...], outcome: str, reason: str | None, now: float | None = None) -> None:
        self._seq += 1
        self._items.append(Sighting(self._seq, now or time.time(), source, name, user_id, anonymous_id, raw,
                                    records, outcome, reason))

    def notify(self) -> None:
        """Wake every reader waiting for newer sightings (called once per emit, not per event)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def newest(self, limit: int, where: SightingFilter = SightingFilter(), after_seq: int = 0) -> list[Sighting]:
        """Up to `limit` matching sightings newer than `after_seq`, newest first."""
        found: list[Sighting] = []
        for sighting in self._reversed():
            if sighting.seq <= after_seq or len(found) >= limit:
                break
            if where.matches(sighting):
                found.append(sighting)
        return found

    async def wait_newer(self, seq: int, timeout_secs: float) -> bool:
        """True once a sighting newer than `seq` exists; False after `timeout_secs` without one."""
        if self._seq > seq:
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_secs)
        except TimeoutError:
            return False
        return self._seq > seq

    def _reversed(self) -> Iterator[Sighting]:
        # Safe without a copy: readers never await while iterating, and ingestion runs on the same loop.
        return reversed(self._items)

    def __len__(self) -> int:
        return len(self._items)
