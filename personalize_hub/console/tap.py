"""The pipeline's observer for the console: every settled input event becomes a sighting in the ring."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any

from hub.connector import Outcome
from hub.events import Event, Rejection
from personalize_hub.console.activity import Snapshot
from personalize_hub.console.ring import EventRing

SETTLED = "console_settled"  # activity key prefix: (SETTLED, source id, outcome)
_source_id = attrgetter("source.source_id")
_REJECTED = Outcome.REJECTED.value
_DELIVERED = Outcome.DELIVERED.value


class ConsoleTap:
    """Called once per emit with what the pipeline already holds; keeps per-source outcome totals.

    Per event it only gathers references; the ring derives what it shows when read. Every rejected or
    retried event is kept; delivered ones up to `delivered_per_sec` (a token bucket): past a few thousand a
    second nobody reads them, and each kept event's objects outlive the young GC generation, which is what
    a full ring costs a busy hub.
    """

    def __init__(self, ring: EventRing, delivered_per_sec: float, clock=time.monotonic):
        self.ring = ring
        self._settled: Counter[tuple[str, str]] = Counter()
        self._rate = delivered_per_sec
        self._clock = clock
        self._tokens, self._refilled = delivered_per_sec, clock()
        self.sampled_out = 0  # delivered events not kept because of the budget

    def __call__(self, events: Sequence[Event], rejections: Sequence[Rejection], outcomes: Sequence[Outcome],
                 reasons: Mapping[int, str], children: Mapping[int, list[Any]]) -> None:
        sources = list(map(_source_id, events))
        values = [outcome.value for outcome in outcomes]
        refused = list(map(_source_id, rejections))
        entries = [(source, None, (), rejection.raw, _REJECTED, rejection.reason)
                   for source, rejection in zip(refused, rejections)]  # refused while decoding: no event
        now = self._clock()
        self._tokens = min(self._rate, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        budget = int(self._tokens)
        kept = 0
        for root, (source, event, value) in enumerate(zip(sources, events, values)):
            if value == _DELIVERED:
                if kept >= budget:
                    self.sampled_out += 1
                    continue
                kept += 1
            entries.append((source, event, children.get(root, ()), event.raw, value, reasons.get(root)))
        self._tokens -= kept
        self.ring.extend(time.time(), entries)
        self._settled.update(zip(sources, values))
        self._settled.update((source, _REJECTED) for source in refused)

    def totals(self) -> Snapshot:
        return {(SETTLED, source, outcome): float(n) for (source, outcome), n in self._settled.items()}
