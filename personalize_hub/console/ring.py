"""The live-event debugger's memory: a bounded ring of recent events and a wake-up for SSE readers.

Ingestion appends one tuple of references per event (the decoded event, what it became, its outcome);
everything a reader sees — names, ids, records, redaction, JSON — is derived when somebody reads, so an
attached console costs the hot path next to nothing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from connectors.destinations.encoding import line_of


class Sighting(NamedTuple):
    """One input event as received and settled; `event` is None when it was refused while decoding."""

    seq: int
    time: float  # epoch seconds of the emit that settled it
    source: str
    event: Any  # hub.events.Event | None
    became: Any  # what the destinations encoded it as (a list: Personalize records, events), or ()
    raw: Any
    outcome: str  # delivered | rejected | retry
    reason: str | None

    @property
    def name(self) -> str | None:
        return self.event.name if self.event is not None else None

    @property
    def user_id(self) -> str | None:
        stitched = next((child.user_id for child in self.became if child.user_id), None)
        return stitched or (self.event.user_id if self.event is not None else None)

    @property
    def anonymous_id(self) -> str | None:
        return self.event.anonymous_id if self.event is not None else None

    def records(self) -> list[Any]:
        """What it was sent as: each destination's record (a Personalize record, or the event itself)."""
        return [line_of(child) for child in self.became]  # an event's raw payload is shown once, as `raw`


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

    def extend(self, at: float, entries: Iterable[tuple[str, Any, Any, Any, str, str | None]]) -> None:
        """Append (source, event, became, raw, outcome, reason) entries settled at `at`, and wake readers."""
        start = self._seq
        self._items.extend(Sighting(start + n, at, *entry) for n, entry in enumerate(entries, 1))
        self._seq = self._items[-1].seq if self._items else start
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
