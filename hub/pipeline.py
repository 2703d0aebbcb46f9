"""submit() then settle (emit): stages → route → each destination encodes and queues its micro-batch → Outcomes."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from operator import attrgetter
from typing import Any, Protocol

from hub import telemetry
from hub.connector import Destination, EmitReport, Outcome, Stage
from hub.delivery.dead_letter import DeadLetter, DeadLetterRecord
from hub.delivery.runner import DestinationRunner, Ticket
from hub.errors import RetryableError
from hub.events import Event, Rejection

log = logging.getLogger(__name__)

class DeliveryObserver(Protocol):
    """Told what a destination delivered (e.g. training-readiness counters), once the inputs settled:
    `wants` is asked once per destination, `observe` gets the delivered units of the ones it wants."""

    def wants(self, destination: Destination) -> bool: ...

    def observe(self, destination: Destination, units: list[Any]) -> None: ...


_source_id = attrgetter("source.source_id")  # counted in C: a generator's frame per event cost more
_SEVERITY = {Outcome.DELIVERED: 0, Outcome.REJECTED: 1, Outcome.RETRY: 2}


class Tap(Protocol):
    """Sees each emit once it settled (the console's debugger): inputs, outcomes, first rejection reason
    per input, and what each input became: the units the destinations encoded from it. Must not block or raise."""

    def __call__(self, events: Sequence[Event], rejections: Sequence[Rejection], outcomes: Sequence[Outcome],
                 reasons: dict[int, str], children: dict[int, list[Any]]) -> None: ...


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
        observer: DeliveryObserver | None = None,
        tap: Tap | None = None,
    ):
        self.stages = list(stages)
        self.runners = list(runners)
        self.dead_letter = dead_letter
        self.observer = observer
        self.tap = tap

    async def emit(self, events: Sequence[Event], rejections: Sequence[Rejection] = ()) -> EmitReport:
        emission = Emission(self, events, rejections, chain=None)
        await emission.submit()
        return await emission.settled()

    async def submit(self, events: Sequence[Event], rejections: Sequence[Rejection] = (), *,
                     chain: object = None) -> Emission:
        """The first half of `emit`: stages, routing, encoding and queueing at every destination, in order.

        Returns once the micro-batch is queued (its order at each destination fixed), before anything is
        delivered: `await emission.settled()` is the acknowledgement. A source may submit its next
        micro-batch meanwhile (pipelining); the destinations keep each partition key's units in submission order,
        and with a `chain` (the source's ordered stream) none overtakes one of its chain given up (RETRY) before
        it: they settle RETRY too until `resume(chain)` (hub.delivery.runner.Ticket).
        """
        emission = Emission(self, events, rejections, chain=chain)
        await emission.submit()
        return emission

    def resume(self, chain: object) -> None:
        """`chain` has redelivered what its destinations held back: send its units again."""
        for runner in self.runners:
            runner.resume(chain)

    __call__ = emit  # a Pipeline is an Emit that also offers `submit` (hub.connector.PipelinedEmit)


class Emission:
    """One micro-batch between `Pipeline.submit` and its settlement: what is known of its outcomes so far."""

    __slots__ = ("pipeline", "events", "rejections", "outcomes", "dead", "dead_roots", "all_rejections", "reasons",
                 "encoded", "stage_retry", "chain")

    def __init__(self, pipeline: Pipeline, events: Sequence[Event], rejections: Sequence[Rejection], *,
                 chain: object):
        self.pipeline = pipeline
        self.chain = chain
        self.events = events
        self.rejections = rejections
        self.outcomes = [Outcome.DELIVERED] * len(events)
        self.dead: list[DeadLetterRecord] = [DeadLetterRecord.of(r) for r in rejections]
        self.dead_roots: list[int | None] = [None] * len(self.dead)
        self.all_rejections = list(rejections)
        self.reasons: dict[int, str] = {}  # input index → why it was first rejected (for the tap)
        self.encoded: list[_Encoded] = []
        self.stage_retry = False

    @property
    def retry_seen(self) -> bool:
        """Whether some input already ended RETRY (a stage failed, or a destination gave a unit up): a source
        that keeps order submits nothing more behind it until it settled."""
        return self.stage_retry or any(e.ticket is not None and e.ticket.retry for e in self.encoded)

    def _mark(self, root: int, outcome: Outcome) -> None:
        if _SEVERITY[outcome] > _SEVERITY[self.outcomes[root]]:
            self.outcomes[root] = outcome

    def _reject(self, root: int, rejection: Rejection, record: DeadLetterRecord) -> None:
        self._mark(root, Outcome.REJECTED)
        self.reasons.setdefault(root, rejection.reason)
        self.all_rejections.append(rejection)
        self.dead.append(record)
        self.dead_roots.append(root)

    async def submit(self) -> None:
        pipeline, events, rejections = self.pipeline, self.events, self.rejections
        received = Counter(map(_source_id, events))
        received.update(map(_source_id, rejections))
        for source_id, count in received.items():
            telemetry.EVENTS_IN.labels(source_id).inc(count)

        # Parallel lists (input index, event) through the stages: no tuple per event and stage.
        roots: list[int] = list(range(len(events)))
        current: list[Event] = list(events)
        for stage in pipeline.stages:
            try:
                results = await stage.apply(current)
            except RetryableError as err:  # e.g. the identity store is unreachable: nothing here settled
                log.warning("stage %s: %s; the source will redeliver", type(stage).__name__, err)
                for root in roots:
                    self._mark(root, Outcome.RETRY)
                self.stage_retry = bool(current)
                roots, current = [], []
                break
            next_roots: list[int] = []
            following: list[Event] = []
            for root, event, result in zip(roots, current, results, strict=True):
                if isinstance(result, Rejection):
                    self._reject(root, result, DeadLetterRecord.of(result, event=event))
                    continue
                for child in result:
                    if isinstance(child, Rejection):
                        self._reject(root, child, DeadLetterRecord.of(child, event=event))
                    else:
                        next_roots.append(root)
                        following.append(child)
            roots, current = next_roots, following

        routed: dict[DestinationRunner, tuple[list[int], list[Event]]] = {
            runner: ([], []) for runner in pipeline.runners}
        for root, event in zip(roots, current):
            targets = [runner for runner in pipeline.runners if runner.destination.accepts(event)]
            if not targets:
                telemetry.EVENTS_SKIPPED.labels("no_destination").inc()
            for runner in targets:
                member_roots, members = routed[runner]
                member_roots.append(root)
                members.append(event)

        # Each destination encodes its micro-batch in one call; what it cannot encode is rejected here,
        # before anything is sent. An input two destinations refuse alike is dead-lettered once.
        refused: set[tuple[str, str]] = set()
        for runner, (member_roots, members) in routed.items():
            if not members:
                continue
            encoded = _Encoded(runner)
            results = _encode_guarded(runner, members)
            for root, event, result in zip(member_roots, members, results, strict=True):
                for unit in [result] if isinstance(result, Rejection) else result:
                    if not isinstance(unit, Rejection):
                        encoded.roots.append(root)
                        encoded.events.append(event)
                        encoded.units.append(unit)
                    elif (unit.source.message_id, unit.reason) not in refused:
                        refused.add((unit.source.message_id, unit.reason))
                        self._reject(root, unit, DeadLetterRecord.of(unit, event=event, destination=runner.name))
                    else:
                        self._mark(root, Outcome.REJECTED)
            self.encoded.append(encoded)

        # Everything is submitted before anything is awaited: destinations work in parallel. One ticket per
        # runner and micro-batch, awaited once: no future, coroutine or callback per unit.
        for encoded in self.encoded:
            if encoded.units:
                encoded.ticket = await encoded.runner.submit_batch(encoded.units, chain=self.chain)

    async def settled(self) -> EmitReport:
        """Wait until every input settled: delivered, rejected with its dead-letter record written, or RETRY."""
        pipeline, outcomes = self.pipeline, self.outcomes
        observer = pipeline.observer
        observed: list[tuple[Destination, list[tuple[int, Any]]]] = []
        for encoded in self.encoded:
            ticket = encoded.ticket
            if ticket is None:
                continue
            runner = encoded.runner
            settlements = await ticket
            observe = observer is not None and observer.wants(runner.destination)
            if ticket.delivered:  # the common case: nothing to mark, only what to observe
                if observe:
                    observed.append((runner.destination, list(zip(encoded.roots, encoded.units))))
                continue
            delivered: list[tuple[int, Any]] = []
            for root, event, unit, settlement in zip(encoded.roots, encoded.events, encoded.units, settlements,
                                                     strict=True):
                if settlement.outcome is Outcome.DELIVERED:
                    if observe:
                        delivered.append((root, unit))
                elif settlement.outcome is Outcome.RETRY:
                    self._mark(root, Outcome.RETRY)
                elif settlement.outcome is Outcome.REJECTED:
                    rejection = Rejection(
                        source=unit.source,
                        reason=settlement.reason or "rejected",
                        message=settlement.message or "",
                        raw=event.raw,
                    )
                    record = DeadLetterRecord.of(
                        rejection, event=event, attempts=settlement.attempts, destination=runner.name
                    )
                    self._reject(root, rejection, record)
            if delivered:
                observed.append((runner.destination, delivered))

        report = EmitReport(outcomes, self.all_rejections)
        try:
            await pipeline.dead_letter.write(self.dead)
        except RetryableError:
            # Nothing rejected is settled without its record: the source must redeliver all of it.
            for root in self.dead_roots:
                if root is not None:
                    self._mark(root, Outcome.RETRY)
            report.dead_letter_failed = bool(self.dead)

        # Observed once the source message settled: one that ends RETRY is delivered again (idempotently,
        # e.g. the same eventIds for Personalize) and observed then, so observing it now would count it twice.
        for destination, delivered in observed:
            settled = [unit for root, unit in delivered if outcomes[root] is not Outcome.RETRY]
            if settled:
                observer.observe(destination, settled)  # type: ignore[union-attr]
        if pipeline.tap is not None:
            children: dict[int, list[Any]] = defaultdict(list)
            for encoded in self.encoded:
                for root, unit in zip(encoded.roots, encoded.units):
                    children[root].append(unit)
            pipeline.tap(self.events, self.rejections, report.outcomes, self.reasons, children)
        return report


class _Encoded:
    """What one destination encoded of a micro-batch: per unit its input index, event and unit; then its ticket."""

    __slots__ = ("runner", "roots", "events", "units", "ticket")

    def __init__(self, runner: DestinationRunner):
        self.runner = runner
        self.roots: list[int] = []
        self.events: list[Event] = []
        self.units: list[Any] = []
        self.ticket: Ticket | None = None


def _encode_guarded(runner: DestinationRunner, events: list[Event]) -> Sequence[Any]:
    """The destination's encoding of a micro-batch; an encoder that raises on some input costs that event only.

    Encoders reject bad input with a Rejection; an exception is a bug meeting input nobody foresaw. The batch is
    then encoded one event at a time, so the events beside the one that raises still go out, and that one is
    dead-lettered with the exception's type (never its text: it may quote the payload) for a person to look at.
    """
    try:
        return runner.destination.encode(events)
    except Exception:
        log.exception("destination %s: encoding a micro-batch raised; encoding its %d events one by one",
                      runner.name, len(events))
    results: list[Any] = []
    for event in events:
        try:
            results.extend(runner.destination.encode([event]))
        except Exception as err:
            results.append(Rejection(source=event.source, reason="encoder_error", raw=event.raw,
                                     message=f"destination {runner.name} could not encode this event "
                                             f"({type(err).__name__}); see the hub's log"))
    return results

