"""The pipeline's observer for the console: every settled input event becomes a sighting in the ring."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from hub.connector import Outcome
from hub.events import Event, Rejection
from personalize_hub.console.activity import Snapshot
from personalize_hub.console.ring import EventRing

SETTLED = "console_settled"  # activity key prefix: (SETTLED, source id, outcome)


class ConsoleTap:
    """Called once per emit with what the pipeline already holds; keeps per-source outcome totals."""

    def __init__(self, ring: EventRing):
        self.ring = ring
        self._settled: Counter[tuple[str, str]] = Counter()

    def __call__(self, events: Sequence[Event], rejections: Sequence[Rejection], outcomes: Sequence[Outcome],
                 reasons: Mapping[int, str], children: Mapping[int, list[Event]]) -> None:
        add, settled = self.ring.add, self._settled
        for rejection in rejections:  # refused while decoding: no event, only the payload and the reason
            source = rejection.source.source_id
            add(source, None, None, None, rejection.raw, (), Outcome.REJECTED.value, rejection.reason)
            settled[(source, Outcome.REJECTED.value)] += 1
        for root, (event, outcome) in enumerate(zip(events, outcomes, strict=True)):
            became = children.get(root, ())
            records = tuple(child.record if child.record is not None else _describe(child) for child in became)
            user_id = next((child.user_id for child in became if child.user_id), event.user_id)
            add(event.source.source_id, event.name, user_id, event.anonymous_id, event.raw, records,
                outcome.value, reasons.get(root))
            settled[(event.source.source_id, outcome.value)] += 1
        self.ring.notify()

    def totals(self) -> Snapshot:
        return {(SETTLED, source, outcome): float(n) for (source, outcome), n in self._settled.items()}


def _describe(event: Event) -> dict:
    # Events a destination takes as they are (identify, alias, a file sink): shown without the payload copy.
    data = event.to_dict()
    data.pop("raw", None)
    return data
