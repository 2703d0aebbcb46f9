"""One assigned Kafka partition: emits its micro-batches in order and knows how far it may commit."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from connectors.sources.kafka_decode import KafkaRecord, RecordDecoder
from hub.connector import Emit, Outcome
from hub.delivery.retry import RetryPolicy
from hub.errors import RetryableError
from hub.events import Event, Rejection

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Message:
    """A fetched record and what of it is not settled yet; settled = committable."""

    offset: int
    events: list[Event] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    decoded: bool = False

    @property
    def settled(self) -> bool:
        return self.decoded and not self.events and not self.rejections


# Between redeliveries of an unsettled micro-batch: the runner's full-jitter backoff, from 0.2 s up to 10 s.
# No attempt or time budget: a record leaves the partition only delivered or dead-lettered (at least once).
REDELIVERY_BACKOFF = RetryPolicy(base_delay_secs=0.2, max_delay_secs=10.0)


class PartitionFlow:
    """Emits one partition's micro-batches one after another (order within a partition is kept).

    Fetches queued behind the batch being emitted go out together as the next one (up to
    `max_batch_records`). Records are held from fetch until committed; `commit_position` is the offset
    after the settled prefix, so a commit never passes an unsettled record. An emit that comes back
    with RETRY is sent again (only its unsettled events) after a backoff, while later batches wait.
    """

    def __init__(
        self,
        name: str,
        emit: Emit,
        decoder: RecordDecoder,
        on_progress: Callable[[PartitionFlow], None],
        backoff: RetryPolicy = REDELIVERY_BACKOFF,
        max_batch_records: int | None = None,
    ):
        self.name = name
        self._emit = emit
        self._decoder = decoder
        self._on_progress = on_progress
        self._backoff = backoff
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
        messages = [_Message(record.offset) for record in records]
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
                delay = self._backoff.backoff_secs(attempt)
                log.warning("kafka %s: %s; retry %d in %.2fs", self.name, err, attempt, delay)
                if await self._sleep_or_close(delay):
                    return False
        for record, message in zip(records, messages, strict=True):
            message.events, message.rejections = self._decoder.decode(record)
            message.decoded = True
        return True

    async def _settle(self, messages: list[_Message]) -> None:
        """Emit until every message settled; RETRY outcomes are emitted again after a backoff."""
        pending = [m for m in messages if not m.settled]
        attempt = 0
        while pending:
            events = [event for message in pending for event in message.events]
            rejections = [rejection for message in pending for rejection in message.rejections]
            report = await self._emit(events, rejections)
            position = 0
            for message in pending:
                outcomes = report.outcomes[position:position + len(message.events)]
                position += len(message.events)
                message.events = [e for e, o in zip(message.events, outcomes, strict=True) if o is Outcome.RETRY]
                if not report.dead_letter_failed:
                    message.rejections = []  # recorded in the dead letter: settled
            pending = [m for m in pending if not m.settled]
            if pending:
                self._on_progress(self)  # what did settle may be committed meanwhile
                attempt += 1
                delay = self._backoff.backoff_secs(attempt)
                log.info("kafka %s: %d records unsettled; redeliver in %.2fs", self.name, len(pending), delay)
                if await self._sleep_or_close(delay):
                    return  # revoked or stopping: the records stay uncommitted for the next owner
        self._on_progress(self)

    async def _sleep_or_close(self, delay_secs: float) -> bool:
        """Sleep, cut short by `stop`; True when the flow is closing."""
        try:
            await asyncio.wait_for(self._closing.wait(), delay_secs)
        except TimeoutError:
            return False
        return True
