"""emit(): identity → mapping → validate → route → await settle → one Outcome per event."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Protocol

from hub import telemetry
from hub.connector import EmitReport, Outcome, Stage
from hub.delivery.dead_letter import DeadLetter, DeadLetterRecord
from hub.delivery.runner import DestinationRunner
from hub.errors import RetryableError
from hub.events import Event, EventKind, Rejection

log = logging.getLogger(__name__)

class DeliveryObserver(Protocol):
    """Told the interactions a destination delivered, under its `readiness_key` (e.g. training-readiness counters)."""

    def observe(self, key: str, events: list[Event]) -> None: ...


_SEVERITY = {Outcome.DELIVERED: 0, Outcome.REJECTED: 1, Outcome.RETRY: 2}


class Tap(Protocol):
    """Sees each emit once it settled (the console's debugger): inputs, outcomes, first rejection reason
    per input, and the events each input became after the stages. Must not block or raise."""

    def __call__(self, events: Sequence[Event], rejections: Sequence[Rejection], outcomes: Sequence[Outcome],
                 reasons: dict[int, str], children: dict[int, list[Event]]) -> None: ...


class Pipeline:
    """Carries events from sources to destination runners and tells the source when they settled.

    The acknowledgement contract: `emit` returns only when every event is DELIVERED, REJECTED with its
    dead-letter record written, or RETRY (nothing may be acknowledged; the source redelivers).
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        runners: Sequence[DestinationRunner],
        dead_letter: DeadLetter,
        readiness: DeliveryObserver | None = None,
        tap: Tap | None = None,
    ):
        self.stages = list(stages)
        self.runners = list(runners)
        self.dead_letter = dead_letter
        self.readiness = readiness
        self.tap = tap

    async def emit(self, events: Sequence[Event], rejections: Sequence[Rejection] = ()) -> EmitReport:
        outcomes = [Outcome.DELIVERED] * len(events)
        dead: list[DeadLetterRecord] = [DeadLetterRecord.of(r) for r in rejections]
        dead_roots: list[int | None] = [None] * len(dead)
        all_rejections = list(rejections)
        reasons: dict[int, str] = {}  # input index → why it was first rejected (for the tap)

        def mark(root: int, outcome: Outcome) -> None:
            if _SEVERITY[outcome] > _SEVERITY[outcomes[root]]:
                outcomes[root] = outcome

        def reject(root: int, rejection: Rejection, record: DeadLetterRecord) -> None:
            mark(root, Outcome.REJECTED)
            reasons.setdefault(root, rejection.reason)
            all_rejections.append(rejection)
            dead.append(record)
            dead_roots.append(root)

        received = Counter(e.source.source_id for e in events)
        received.update(r.source.source_id for r in rejections)
        for source_id, count in received.items():
            telemetry.EVENTS_IN.labels(source_id).inc(count)

        current: list[tuple[int, Event]] = list(enumerate(events))
        for stage in self.stages:
            try:
                results = await stage.apply([event for _, event in current])
            except RetryableError as err:  # e.g. the identity store is unreachable: nothing here settled
                log.warning("stage %s: %s; the source will redeliver", type(stage).__name__, err)
                for root, _ in current:
                    mark(root, Outcome.RETRY)
                current = []
                break
            following: list[tuple[int, Event]] = []
            for (root, event), result in zip(current, results, strict=True):
                if isinstance(result, Rejection):
                    reject(root, result, DeadLetterRecord.of(result, event=event))
                    continue
                for child in result:
                    if isinstance(child, Rejection):
                        reject(root, child, DeadLetterRecord.of(child, event=event))
                    else:
                        following.append((root, child))
            current = following

        routed: dict[DestinationRunner, list[tuple[int, Event]]] = {runner: [] for runner in self.runners}
        for root, event in current:
            targets = [runner for runner in self.runners if runner.destination.accepts(event)]
            if not targets:
                telemetry.EVENTS_SKIPPED.labels("no_destination").inc()
            for runner in targets:
                routed[runner].append((root, event))

        # Everything is submitted before anything is awaited: destinations work in parallel. One call per
        # runner and micro-batch, and the futures awaited one by one (a settled one returns at once):
        # per-event submit coroutines and gather's callbacks cost more than the batching itself.
        submitted = [(runner, members, await runner.submit_all([event for _, event in members]))
                     for runner, members in routed.items() if members]
        delivered_for_readiness: dict[str, list[tuple[int, Event]]] = defaultdict(list)
        for runner, members, futures in submitted:
            readiness_key = runner.destination.readiness_key() if self.readiness else None
            for (root, event), future in zip(members, futures, strict=True):
                settlement = await future
                if settlement.outcome is Outcome.DELIVERED:
                    if readiness_key and event.kind is EventKind.INTERACTION:
                        delivered_for_readiness[readiness_key].append((root, event))
                elif settlement.outcome is Outcome.RETRY:
                    mark(root, Outcome.RETRY)
                elif settlement.outcome is Outcome.REJECTED:
                    rejection = Rejection(
                        source=event.source,
                        reason=settlement.reason or "rejected",
                        message=settlement.message or "",
                        raw=event.raw,
                    )
                    record = DeadLetterRecord.of(
                        rejection, event=event, attempts=settlement.attempts, destination=runner.name
                    )
                    reject(root, rejection, record)

        report = EmitReport(outcomes, all_rejections)
        try:
            await self.dead_letter.write(dead)
        except RetryableError:
            # Nothing rejected is settled without its record: the source must redeliver all of it.
            for root in dead_roots:
                if root is not None:
                    mark(root, Outcome.RETRY)
            report.dead_letter_failed = bool(dead)

        # Counted once the source message settled: one that ends RETRY is delivered again (its eventIds make
        # that idempotent for Personalize) and counted then, so counting it now would count it twice.
        for key, delivered in delivered_for_readiness.items():
            settled = [event for root, event in delivered if outcomes[root] is not Outcome.RETRY]
            if settled:
                self.readiness.observe(key, settled)  # type: ignore[union-attr]
        if self.tap is not None:
            children: dict[int, list[Event]] = defaultdict(list)
            for root, event in current:
                children[root].append(event)
            self.tap(events, rejections, report.outcomes, reasons, children)
        return report
