"""Runs one destination: batches submitted events, rate-limits, retries, and settles each event."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hub import telemetry
from hub.connector import BatchPolicy, Destination, Outcome
from hub.delivery.batcher import PartitionedBatcher
from hub.delivery.rate import AdaptiveRateLimiter
from hub.delivery.retry import RetryPolicy
from hub.errors import PartialFailure, RejectedError, RetryableError
from hub.events import Event

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Settlement:
    """How one event settled at one destination."""

    outcome: Outcome
    reason: str | None = None
    message: str | None = None
    attempts: int = 0


DELIVERED = Settlement(Outcome.DELIVERED)
# A chained unit of a partition key whose earlier unit of the same chain settled RETRY: sent, it would overtake it.
HELD_BACK = Settlement(Outcome.RETRY, "held_back", "an earlier unit of the same partition key was not delivered")


class Ticket:
    """One submitted micro-batch: a settlement per member, and one future done when all of them are.

    The pipeline awaits one ticket per runner and micro-batch instead of a future per event: futures,
    their callbacks and the awaits of each cost more than the batching itself.

    The members of tickets of one `chain` (a source's ordered stream, e.g. a Kafka partition that pipelines
    its micro-batches) never overtake a unit of their partition key and chain that settled RETRY: once the
    runner gives one up, the chain's members queued or submitted under that key settle RETRY too
    (`HELD_BACK`) until `DestinationRunner.resume(chain)`, so that the source redelivers them in their order; a chain
    that ended (hub.connector.Chain) submits nothing more, so a unit of it given up then holds no later submission back.
    Chained or not, a ticket's own later members of a key never overtake one of its members given up: they are
    held back too (a source redelivering a micro-batch emits it as one ticket).
    """

    __slots__ = ("settlements", "delivered", "retry", "chain", "_unsettled", "_done")

    def __init__(self, size: int, chain: object = None):
        self.settlements: list[Settlement | None] = [None] * size
        self.delivered = True  # every member settled DELIVERED so far
        self.retry = False  # some member settled RETRY
        self.chain = chain
        self._unsettled = size
        self._done: asyncio.Future[list[Settlement]] = asyncio.get_running_loop().create_future()
        if not size:
            self._done.set_result([])

    def settle(self, index: int, settlement: Settlement) -> None:
        """Settle member `index`; a member settles once (a later settlement of it is ignored)."""
        if self.settlements[index] is not None:
            return
        self.settlements[index] = settlement
        if settlement.outcome is not Outcome.DELIVERED:
            self.delivered = False
            self.retry = self.retry or settlement.outcome is Outcome.RETRY
        self._unsettled -= 1
        if not self._unsettled and not self._done.done():  # done: the emit waiting for it was cancelled
            self._done.set_result(self.settlements)  # type: ignore[arg-type]

    def __await__(self):  # type: ignore[no-untyped-def]
        return self._done.__await__()


class _One:
    """The ticket of a single `submit`: settles a future of its own."""

    __slots__ = ("future",)
    chain = None

    def __init__(self) -> None:
        self.future: asyncio.Future[Settlement] = asyncio.get_running_loop().create_future()

    def settle(self, index: int, settlement: Settlement) -> None:
        if not self.future.done():
            self.future.set_result(settlement)


class _Many:
    """The ticket of a `submit_all`: member `index` settles its own future."""

    __slots__ = ("ones",)
    chain = None

    def __init__(self, ones: list[_One]):
        self.ones = ones

    def settle(self, index: int, settlement: Settlement) -> None:
        self.ones[index].settle(0, settlement)


# A queued member: the event, the ticket it belongs to and its index there.
_Item = tuple[Event, "Ticket | _One | _Many", int]


class DestinationRunner:
    """The one retry owner for a destination: everything between `submit` and a settled ticket."""

    def __init__(
        self,
        destination: Destination,
        policy: BatchPolicy,
        retry: RetryPolicy,
        *,
        max_pending: int = 10_000,
    ):
        self.destination = destination
        self.name = destination.config.id
        self.policy = policy
        self.retry = retry
        self._batcher: PartitionedBatcher[_Item] = PartitionedBatcher(
            max_items=policy.max_events,
            max_bytes=policy.max_bytes,
            max_wait_secs=policy.max_wait_secs,
            max_pending=max_pending,
            size_of=lambda item: destination.size_of(item[0]),
        )
        self._limiter = (
            AdaptiveRateLimiter(policy.max_requests_per_sec) if policy.max_requests_per_sec else None
        )
        self._slots = asyncio.Semaphore(policy.max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._held: set[tuple[object, object]] = set()  # (partition key, chain) holding back (Ticket)
        # Why sends fail right now (no credentials, engine unreachable, unknown tracker): /readyz says it.
        # Throttling is not a failure of the hub's setup; the next delivered batch clears it.
        self.failing: str | None = None
        # Label children resolved once: .labels() costs a lock and a dict lookup per call on the hot path.
        self._events_out = telemetry.EVENTS_OUT.labels(self.name)
        self._batch_fill = telemetry.BATCH_FILL.labels(self.name)
        self._lag = telemetry.DELIVERY_LAG.labels(self.name)

    async def start(self) -> None:
        await self.destination.start()
        self._dispatcher = asyncio.create_task(self._dispatch(), name=f"runner:{self.name}")

    async def submit(self, event: Event) -> asyncio.Future[Settlement]:
        """Queue an event (waiting under backpressure); the returned future settles when it does."""
        one = _One()
        await self._batcher.put(self.destination.partition_key(event), (event, one, 0))
        return one.future

    async def submit_all(self, events: Sequence[Event]) -> list[asyncio.Future[Settlement]]:
        """`submit` each event, in order, in one call: a future per event (for callers that settle members
        one by one, as the exporter does; the pipeline takes a `submit_batch` ticket)."""
        ones = [_One() for _ in events]
        await self._queue(events, _Many(ones))
        return [one.future for one in ones]

    async def submit_batch(self, events: Sequence[Event], *, chain: object = None) -> Ticket:
        """Queue a micro-batch, in order (waiting for room under backpressure); await the ticket for its
        settlements, one per event in order. `chain`: see Ticket."""
        ticket = Ticket(len(events), chain)
        await self._queue(events, ticket)
        return ticket

    def resume(self, chain: object) -> None:
        """`chain` redelivered what was held back: its units of every partition key go out again."""
        # In place: a `_queue` waiting for room holds this set.
        self._held.difference_update([held for held in self._held if held[1] is chain])

    async def _queue(self, events: Sequence[Event], ticket: Ticket | _Many) -> None:
        partition_key = self.destination.partition_key
        batcher = self._batcher
        chain, held = ticket.chain, self._held
        retried: set[object] = set()  # keys of this ticket's members that already ended RETRY
        now = batcher.now()  # one clock reading for the micro-batch: its units are queued together
        for index, event in enumerate(events):
            if batcher.pending >= batcher.max_pending:
                # Waiting for room, before the held check: the key may be given up meanwhile, or resumed while
                # earlier members of it were held back: the later ones must not overtake those either.
                await batcher.wait_for_room()
                now = batcher.now()
                if type(ticket) is Ticket and ticket.retry:
                    settled = ticket.settlements[:index]
                    retried = {partition_key(events[i]) for i, settlement in enumerate(settled)
                               if settlement is not None and settlement.outcome is Outcome.RETRY}
            key = partition_key(event)
            if (held or retried) and (key in retried or (key, chain) in held):  # held: never (key, None)
                ticket.settle(index, HELD_BACK)
            else:
                batcher.put_nowait(key, (event, ticket, index), now)

    async def close(self) -> None:
        """Deliver what is queued, then stop and close the destination."""
        while self._in_flight or (self._batcher.pending and self._dispatcher and not self._dispatcher.done()):
            await asyncio.sleep(0.01)  # a dead dispatcher drains nothing: waiting for it would hang shutdown
        if self._dispatcher:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        await self.destination.close()

    async def _dispatch(self) -> None:
        while True:
            # A free slot first, then the batch: while every slot is busy, a partition key's units keep
            # queueing and its batch is cut as late as possible (fuller calls when the service sets the pace).
            await self._slots.acquire()
            try:
                key, batch = await self._batcher.next_batch()
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.create_task(self._deliver(key, batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _deliver(self, key: object, batch: list[_Item]) -> None:
        gave_up = True
        try:
            gave_up = await self._send(batch, started=time.monotonic(), attempts=0)
        except Exception as err:  # a bug must not strand tickets: leave them unsettled for redelivery
            log.exception("destination %s: unexpected failure", self.name)
            self._settle(batch, Settlement(Outcome.RETRY, "internal_error", repr(err)))
        finally:
            if gave_up:
                self._hold_back(key, batch)
            self._batcher.release(key)
            self._slots.release()

    def _hold_back(self, key: object, given_up: list[_Item]) -> None:
        """Hold back the chains of a batch given up under `key`: their later units of that key (Ticket); and
        the later units of that key of its micro-batches, chained or not."""
        chains = _chains(given_up)
        # An ended chain (hub.connector.Chain) submits nothing more: a pair for it would only stay for good.
        self._held.update((key, chain) for chain in chains if not getattr(chain, "ended", False))
        held = self._batcher.remove(key, _followers(given_up, chains))
        if held:
            self._settle(held, HELD_BACK)

    async def _send(self, items: Sequence[_Item], *, started: float, attempts: int) -> bool:
        """Send until every item settled; True when some of them settled RETRY (given up)."""
        pending = list(items)
        while pending:
            attempts += 1
            if self._limiter:
                await self._limiter.acquire()
            self._batch_fill.observe(len(pending) / self.policy.max_events)
            try:
                await self.destination.send([item[0] for item in pending])
            except RejectedError as err:
                if len(pending) == 1:
                    self._settle(pending, Settlement(Outcome.REJECTED, err.reason, err.message, attempts))
                    return False
                # The service rejected the request without naming the member: bisect so one bad
                # record does not sink the others; halves go in order to keep partition order.
                middle = len(pending) // 2
                rest = pending[middle:]
                if not await self._send(pending[:middle], started=started, attempts=attempts):
                    return await self._send(rest, started=started, attempts=attempts)
                # A unit given up: its chains' and micro-batches' units of the second half would overtake it.
                follows = _followers(pending[:middle], _chains(pending[:middle]))
                self._settle([item for item in rest if follows(item)], HELD_BACK)
                rest = [item for item in rest if not follows(item)]
                if rest:
                    await self._send(rest, started=started, attempts=attempts)
                return True
            except PartialFailure as failure:
                for index, rejected in failure.rejected.items():
                    self._settle(
                        [pending[index]], Settlement(Outcome.REJECTED, rejected.reason, rejected.message, attempts)
                    )
                self._settle(
                    [item for i, item in enumerate(pending) if i not in failure.rejected and i not in failure.retry],
                    DELIVERED,
                )
                if not failure.retry:
                    return False
                pending = [pending[i] for i in sorted(failure.retry)]
                error = next(iter(failure.retry.values()))
            except RetryableError as err:
                error = err
            else:
                if self._limiter:
                    self._limiter.on_success()
                self.failing = None
                self._settle(pending, DELIVERED)
                return False
            if not await self._back_off(error, attempts, started):
                self._settle(pending, Settlement(Outcome.RETRY, "retries_exhausted", str(error), attempts))
                telemetry.SEND_GIVEUPS.labels(self.name).inc(len(pending))
                return True
        return False

    async def _back_off(self, error: RetryableError, attempts: int, started: float) -> bool:
        """Sleep before the next attempt; False when the retry budget is spent."""
        if error.throttled:
            telemetry.SEND_THROTTLES.labels(self.name).inc()
            if self._limiter:
                self._limiter.on_throttled()
        else:
            self.failing = str(error)
        delay = max(self.retry.backoff_secs(attempts), error.retry_after_secs or 0.0)
        if not self.retry.may_retry(attempts, time.monotonic() - started, delay):
            return False
        telemetry.SEND_RETRIES.labels(self.name).inc()
        log.info("destination %s: %s; retry %d in %.2fs", self.name, error, attempts, delay)
        await asyncio.sleep(delay)
        return True

    def _settle(self, items: Sequence[_Item], settlement: Settlement) -> None:
        for _, ticket, index in items:
            ticket.settle(index, settlement)
        if settlement.outcome is Outcome.DELIVERED and items:
            now = time.time()
            telemetry.observe_all(self._lag, [max(0.0, now - event.timestamp) for event, _, _ in items])
            self._events_out.inc(len(items))


def _chains(items: Sequence[_Item]) -> set[object]:
    """The chains the items' tickets belong to (Ticket)."""
    return {ticket.chain for _, ticket, _ in items if ticket.chain is not None}


def _followers(given_up: Sequence[_Item], chains: set[object]) -> Callable[[_Item], bool]:
    """Whether a unit of the key of `given_up` must not overtake it: one of its chains, or of the micro-batches
    that have a member of it that ended RETRY (Ticket)."""
    tickets = {ticket for _, ticket, index in given_up
               if type(ticket) is Ticket and (settlement := ticket.settlements[index]) is not None
               and settlement.outcome is Outcome.RETRY}
    return lambda item: item[1].chain in chains or item[1] in tickets
