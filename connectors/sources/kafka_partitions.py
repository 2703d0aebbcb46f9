"""One assigned Kafka partition: emits its micro-batches in order and knows how far it may commit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from connectors.sources.kafka_decode import KafkaRecord, RecordDecoder, readable
from hub.connector import Emit, Outcome
from hub.delivery.retry import RetryPolicy
from hub.errors import RetryableError
from hub.events import Event, Rejection

log = logging.getLogger(__name__)


# The reason code of a record dead-lettered because it still ended RETRY when the retry budget was spent.
RETRIES_EXHAUSTED = "retries_exhausted"


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


class PartitionFlow:
    """Emits one partition's micro-batches one after another (order within a partition is kept).

    Fetches queued behind the batch being emitted go out together as the next one (up to
    `max_batch_records`). Records are held from fetch until committed; `commit_position` is the offset
    after the settled prefix, so a commit never passes an unsettled record. An emit that comes back
    with RETRY is sent again (only its unsettled events) after the runners' backoff, while later batches
    wait, within the hub's one retry budget (`retry.max_elapsed_secs` since the first emit); past it, each
    record still unsettled is dead-lettered whole (reason `retries_exhausted`, replayable by `hub replay`)
    and the partition moves on. Only a dead letter that cannot be written holds a record longer.
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

    async def _run(self) -> None:
        while not self._closing.is_set():
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            records, messages = self._next_batch()
            if await self._decode(records, messages):
                await self._settle(messages)

    def _next_batch(self) -> tuple[Sequence[KafkaRecord], list[_Message]]:
        """The oldest queued fetch, joined by the fetches queued behind it, up to `max_batch_records`.

        One `getmany(max_records=N)` brings N records for all partitions together, so a partition's
        share is a fraction of N; and fetching goes on while a micro-batch settles. Emitting what queued
        meanwhile as one micro-batch keeps micro-batches at the configured size, and a destination that
        batches by key (PutEvents: by session) then finds more events per key in each of them.
        """
        records, messages = self._queue.popleft()
        limit = self._max_batch_records
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

    async def _settle(self, messages: list[_Message]) -> None:
        """Emit until every message settled; RETRY outcomes are emitted again after a backoff, and
        dead-lettered once the retry budget is spent."""
        pending = [m for m in messages if not m.settled]
        attempt, started = 0, time.monotonic()
        while pending:
            events = [event for message in pending for event in message.events]
            rejections = [rejection for message in pending for rejection in message.rejections]
            report = await self._emit(events, rejections)
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
            pending = [m for m in pending if not m.settled]
            if pending:
                attempt += 1
                delay = self._retry.backoff_secs(attempt)
                if self._closing.is_set():
                    return  # revoked or stopping: the records stay uncommitted for the next owner
                if not self._retry.in_time(time.monotonic() - started, delay):
                    pending = await self._dead_letter(pending, attempt, time.monotonic() - started)
                    if not pending:
                        break
                self._on_progress(self)  # what did settle may be committed meanwhile
                log.info("kafka %s: %d records unsettled; redeliver in %.2fs", self.name, len(pending), delay)
                if await self._sleep_or_close(delay):
                    return  # revoked or stopping: the records stay uncommitted for the next owner
        for message in messages:
            message.record = None
        self._on_progress(self)

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
