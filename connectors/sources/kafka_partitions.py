"""One assigned Kafka partition: emits its micro-batches in order and knows how far it may commit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from connectors.sources.kafka_decode import KafkaRecord, RecordDecoder, readable
from hub.connector import Chain, Emit, EmitReport, Outcome, PipelinedEmit, Submission
from hub.delivery.retry import RetryPolicy
from hub.errors import RetryableError
from hub.events import Event, Rejection

log = logging.getLogger(__name__)


# The reason code of a record dead-lettered because it still ended RETRY when the retry budget was spent.
RETRIES_EXHAUSTED = "retries_exhausted"
# Pipelined, a micro-batch holds at most this share of `max_batch_records` (a larger fetch is split): the next
# one can then be submitted while the first is in flight, whatever the size of the fetches.
PIPELINED_BATCH_SHARE = 4


class _Message:
    """A fetched record and what of it is not settled yet; settled = committable."""

    __slots__ = ("offset", "record", "events", "rejections", "decoded")

    def __init__(self, offset: int, record: KafkaRecord | None):
        self.offset = offset
        self.record = record  # kept while unsettled: dead-lettered whole when its retry budget is spent
        # Replaced, never changed in place: the shared empty tuple costs no allocation per record.
        self.events: Sequence[Event] = ()
        self.rejections: Sequence[Rejection] = ()
        self.decoded = False

    @property
    def settled(self) -> bool:
        return self.decoded and not self.events and not self.rejections


class _InFlight:
    """A submitted micro-batch: its messages not settled at submission, when it was first emitted, its size."""

    __slots__ = ("messages", "submission", "started", "records")

    def __init__(self, messages: list[_Message], submission: Submission | None, started: float, records: int):
        self.messages, self.submission, self.started, self.records = messages, submission, started, records


class PartitionFlow:
    """Emits one partition's micro-batches in order (order within a partition is kept).

    Fetches queued behind the batch being emitted go out together as the next one (up to
    `max_batch_records`). Records are held from fetch until committed; `commit_position` is the offset
    after the settled prefix, so a commit never passes an unsettled record. An emit that comes back
    with RETRY is sent again (only its unsettled events) after the runners' backoff, while later batches
    wait, within the hub's one retry budget (`retry.max_elapsed_secs` since the first emit); past it, each
    record still unsettled is dead-lettered whole (reason `retries_exhausted`, replayable by `hub replay`)
    and the partition moves on. Only a dead letter that cannot be written holds a record longer.

    With a pipelining emit (hub.connector.PipelinedEmit), micro-batches are submitted, in order, before
    the ones ahead of them settled, up to `max_batch_records` records in flight; their settlements are
    taken in order. Why: a PutEvents batch waits max_wait_secs for its session's next clicks, and with the
    next micro-batch submitted behind it they join it (fuller calls), instead of the partition waiting that
    long for each micro-batch to settle before it emits the next. Submitting stops as soon as one in flight
    has an event ending RETRY: the destinations hold back that partition's later events of the same key
    (they end RETRY too), the batches in flight settle, and their unsettled events are emitted again batch by
    batch, in offset order, as above; then the flow resumes submitting.
    """

    def __init__(
        self,
        name: str,
        emit: Emit,
        decoder: RecordDecoder,
        on_progress: Callable[[PartitionFlow], None],
        retry: RetryPolicy | None = None,
        max_batch_records: int | None = None,
    ):
        self.name = name
        self._emit = emit
        self._decoder = decoder
        self._on_progress = on_progress
        self._retry = retry or RetryPolicy()
        self._max_batch_records = max_batch_records
        self._window: deque[_Message] = deque()  # fetched, not yet passed by the commit position
        self._queue: deque[tuple[Sequence[KafkaRecord], list[_Message]]] = deque()
        self._wakeup = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pipelined = emit if isinstance(emit, PipelinedEmit) else None
        # What the runners hold back this flow's later units by (Ticket.chain): a token, not the flow itself, which
        # a unit still in a runner after `stop` (revoked mid-retry) would keep alive with its whole record window.
        self._chain = Chain()
        self._in_flight: deque[_InFlight] = deque()
        self._in_flight_records = 0
        self._settled = asyncio.Event()  # an in-flight batch settled, or one was submitted
        self._recovering = False  # emitting again what an in-flight batch left unsettled: submit nothing new
        self._submitting_done = False
        self.position: int | None = None  # next offset to commit (after the settled prefix)
        self.committed: int | None = None  # last offset committed to the group
        self.first_offset: int | None = None

    @property
    def held(self) -> int:
        """Records fetched and not yet passed by the commit position: what backpressure bounds."""
        return len(self._window)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"kafka:{self.name}")

    def add(self, records: Sequence[KafkaRecord]) -> None:
        if not records or self._closing.is_set():
            return
        if self.first_offset is None:
            self.first_offset = records[0].offset
        messages = [_Message(record.offset, record) for record in records]
        self._window.extend(messages)
        self._queue.append((records, messages))
        self._wakeup.set()

    def commit_position(self) -> int | None:
        """Advance past the settled prefix; the offset a commit may name now (None: nothing yet)."""
        while self._window and self._window[0].settled:
            self.position = self._window.popleft().offset + 1
        return self.position

    async def stop(self, grace_secs: float) -> None:
        """Take no new batch; let the one being emitted settle for up to `grace_secs`, then drop it."""
        self._closing.set()
        self._queue.clear()
        self._wakeup.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_secs)
        except TimeoutError:
            log.warning("kafka %s: in-flight batch not settled in %.1fs; left uncommitted", self.name, grace_secs)
        except Exception:
            log.exception("kafka %s: partition flow failed", self.name)
        finally:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            if self._pipelined is not None:
                self._chain.ended = True  # a unit of it given up from now on holds nothing back
                self._pipelined.resume(self._chain)  # nothing of this flow is held back any more

    async def _run(self) -> None:
        if self._pipelined is not None:
            await self._run_pipelined(self._pipelined)
            return
        while not self._closing.is_set():
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            records, messages = self._next_batch()
            if await self._decode(records, messages):
                await self._settle(messages)

    def _blocked(self) -> bool:
        """Whether an in-flight batch has events ending RETRY (or they are being emitted again)."""
        return self._recovering or any(b.submission is not None and b.submission.retry_seen for b in self._in_flight)

    def _pipelined_batch_records(self) -> int:
        return max(1, (self._max_batch_records or 0) // PIPELINED_BATCH_SHARE)

    def _submittable(self) -> bool:
        """A batch may go: records are queued, nothing in flight has RETRY events, and there is room for one."""
        return (bool(self._queue) and not self._blocked()
                and (not self._in_flight or (self._max_batch_records or 0) - self._in_flight_records
                     >= self._pipelined_batch_records()))

    async def _wait(self, ready: Callable[[], bool]) -> bool:
        """Wait until `ready()`; False when the flow is closing."""
        while not ready() and not self._closing.is_set():
            self._wakeup.clear()
            await self._wakeup.wait()
        return not self._closing.is_set()

    async def _run_pipelined(self, pipelined: PipelinedEmit) -> None:
        settler = asyncio.create_task(self._settle_in_order(), name=f"kafka-settle:{self.name}")
        settler.add_done_callback(self._report_settler_failure)
        try:
            while await self._wait(self._submittable):
                records, messages = self._next_batch(self._pipelined_batch_records(), split=True)
                self._in_flight_records += len(records)  # its room is taken while it decodes
                # Decoding may wait (Avro schemas): an in-flight batch may have had RETRY events meanwhile.
                if not await self._decode(records, messages) or not await self._wait(lambda: not self._blocked()):
                    break
                pending = [m for m in messages if not m.settled]
                started = time.monotonic()
                submission = None
                if pending:
                    events = [event for message in pending for event in message.events]
                    rejections = [rejection for message in pending for rejection in message.rejections]
                    submission = await pipelined.submit(events, rejections, chain=self._chain)
                self._in_flight.append(_InFlight(pending, submission, started, len(records)))
                self._settled.set()
                for message in messages:
                    if message.settled:
                        message.record = None
        finally:
            self._submitting_done = True
            self._settled.set()
            try:
                await settler  # the batches in flight settle (the stop's grace bounds it)
            finally:
                settler.cancel()

    def _report_settler_failure(self, settler: asyncio.Task[None]) -> None:
        # A bug there stalls the partition (nothing settles, so nothing more is submitted or committed): say so
        # now, not at the stop that collects the exception.
        if not settler.cancelled() and settler.exception() is not None:
            log.error("kafka %s: settling failed; the partition is stalled until it is reassigned", self.name,
                      exc_info=settler.exception())

    async def _settle_in_order(self) -> None:
        """Take the in-flight batches' settlements oldest first; emit again what one left unsettled."""
        while True:
            if not self._in_flight:
                if self._submitting_done:
                    return
                self._settled.clear()
                await self._settled.wait()
                continue
            batch = self._in_flight[0]
            if batch.submission is not None:
                unsettled = self._apply(await batch.submission.settled(), batch.messages)
            else:
                unsettled = []
            self._in_flight.popleft()
            self._in_flight_records -= batch.records
            if unsettled:
                # Submit nothing new; the batches behind it settle first (their events of the keys given up are
                # held back), then each batch's unsettled events are emitted again, in offset order.
                self._recovering = True
                retried = [(unsettled, batch.started)]
                while self._in_flight:
                    later = self._in_flight[0]
                    if later.submission is not None:
                        left = self._apply(await later.submission.settled(), later.messages)
                        if left:
                            retried.append((left, later.started))
                        else:
                            self._forget_records(later.messages)
                    self._in_flight.popleft()
                    self._in_flight_records -= later.records
                self._on_progress(self)
                for left, started in retried:
                    if not await self._settle(left, started=started, attempt=1):
                        return  # closing: the records stay uncommitted for the next owner
                self._pipelined.resume(self._chain)  # type: ignore[union-attr]
                self._recovering = False
            self._forget_records(batch.messages)
            self._on_progress(self)
            self._wakeup.set()

    @staticmethod
    def _forget_records(messages: list[_Message]) -> None:
        for message in messages:
            message.record = None

    def _next_batch(self, limit: int | None = None, *, split: bool = False
                    ) -> tuple[Sequence[KafkaRecord], list[_Message]]:
        """The oldest queued fetch, joined by the fetches queued behind it, up to `limit` (default:
        `max_batch_records`); `split`: the oldest fetch, if larger, is cut at `limit` and its rest stays queued.

        One `getmany(max_records=N)` brings N records for all partitions together, so a partition's
        share is a fraction of N; and fetching goes on while a micro-batch settles. Emitting what queued
        meanwhile as one micro-batch keeps micro-batches at the configured size, and a destination that
        batches by key (PutEvents: by session) then finds more events per key in each of them.
        """
        records, messages = self._queue.popleft()
        limit = limit or self._max_batch_records
        if split and limit is not None and len(records) > limit:
            self._queue.appendleft((records[limit:], messages[limit:]))
            return records[:limit], messages[:limit]
        if limit is None or not self._queue or len(records) + len(self._queue[0][0]) > limit:
            return records, messages
        records, messages = list(records), list(messages)
        while self._queue and len(records) + len(self._queue[0][0]) <= limit:
            more_records, more_messages = self._queue.popleft()
            records += more_records
            messages += more_messages
        return records, messages

    async def _decode(self, records: Sequence[KafkaRecord], messages: list[_Message]) -> bool:
        """Decode the batch (fetching Avro schemas first); False when the flow closed while waiting."""
        attempt = 0
        while True:
            try:
                await self._decoder.prepare(records)
                break
            except RetryableError as err:  # the schema registry is down: wait, never dead-letter for it
                attempt += 1
                delay = self._retry.backoff_secs(attempt)  # no budget: never dead-letter for the registry
                log.warning("kafka %s: %s; retry %d in %.2fs", self.name, err, attempt, delay)
                if await self._sleep_or_close(delay):
                    return False
        for record, message in zip(records, messages, strict=True):
            message.events, message.rejections = self._decoder.decode(record)
            message.decoded = True
        return True

    @staticmethod
    def _apply(report: EmitReport, pending: list[_Message]) -> list[_Message]:
        """Settle what `report` settled of the messages whose events and rejections were emitted (in order);
        the messages still unsettled."""
        any_retry = Outcome.RETRY in report.outcomes
        position = 0
        for message in pending:
            if any_retry:
                outcomes = report.outcomes[position:position + len(message.events)]
                position += len(message.events)
                message.events = [e for e, o in zip(message.events, outcomes, strict=True) if o is Outcome.RETRY]
            else:  # the common case: every event settled
                message.events = ()
            if not report.dead_letter_failed:
                message.rejections = ()  # recorded in the dead letter: settled
        return [m for m in pending if not m.settled] if any_retry or report.dead_letter_failed else []

    async def _settle(self, messages: list[_Message], *, started: float | None = None, attempt: int = 0) -> bool:
        """Emit until every message settled; RETRY outcomes are emitted again after a backoff, and
        dead-lettered once the retry budget is spent (counted from `started`, `attempt` emits made already).
        False when the flow closed first (the records stay uncommitted)."""
        pending = [m for m in messages if not m.settled]
        started = time.monotonic() if started is None else started
        while pending:
            if attempt:  # emitted before and left unsettled
                delay = self._retry.backoff_secs(attempt)
                if self._closing.is_set():
                    return False  # revoked or stopping: the records stay uncommitted for the next owner
                if not self._retry.in_time(time.monotonic() - started, delay):
                    pending = await self._dead_letter(pending, attempt, time.monotonic() - started)
                    if not pending:
                        break
                self._on_progress(self)  # what did settle may be committed meanwhile
                log.info("kafka %s: %d records unsettled; redeliver in %.2fs", self.name, len(pending), delay)
                if await self._sleep_or_close(delay):
                    return False  # revoked or stopping: the records stay uncommitted for the next owner
            events = [event for message in pending for event in message.events]
            rejections = [rejection for message in pending for rejection in message.rejections]
            pending = self._apply(await self._emit(events, rejections), pending)
            attempt += 1
        self._forget_records(messages)
        self._on_progress(self)
        return True

    async def _dead_letter(self, pending: list[_Message], attempts: int, elapsed_secs: float) -> list[_Message]:
        """Dead-letter each record whose events still end RETRY, whole (its payload as received, so that
        `hub replay` decodes it again); returns the messages still unsettled (the dead letter failed)."""
        exhausted = [m for m in pending if m.events and m.record is not None]
        why = (f"still not delivered after {attempts} emits over {elapsed_secs:.1f}s, past the retry budget "
               f"(config `retry.max_elapsed_secs`); replay it once the cause is fixed")
        rejections = [Rejection(source=self._decoder.origin(m.record), reason=RETRIES_EXHAUSTED,  # type: ignore[arg-type]
                                message=why, raw=readable(m.record.value))  # type: ignore[union-attr]
                      for m in exhausted]
        if not rejections:
            return pending
        report = await self._emit([], rejections)
        if report.dead_letter_failed:
            log.warning("kafka %s: %d records spent their retry budget, but the dead letter failed; they are "
                        "held and emitted again", self.name, len(rejections))
            return pending
        log.warning("kafka %s: %d records dead-lettered (%s): %s", self.name, len(rejections), RETRIES_EXHAUSTED, why)
        for message in exhausted:
            message.events = ()
        return [m for m in pending if not m.settled]

    async def _sleep_or_close(self, delay_secs: float) -> bool:
        """Sleep, cut short by `stop`; True when the flow is closing."""
        try:
            await asyncio.wait_for(self._closing.wait(), delay_secs)
        except TimeoutError:
            return False
        return True
