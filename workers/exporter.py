"""One export slice: stream output lines, decorate, diff against the last sync, push through the ledger."""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import msgspec

from connectors.formats.recommendations import RELATED_ITEMS, SEGMENT_AUDIENCE, USER_RECOMMENDATIONS
from hub.connector import Destination, ExportDestination, Outcome
from hub.delivery.retry import RetryPolicy
from hub.delivery.runner import DestinationRunner, Settlement, Ticket
from hub.events import SourceRef
from hub.rows import ExportRow
from workers.config import Recipe
from workers.ledger import (
    RETRIED_ON_RERUN, SENDING, SENT, UNCHANGED, UNKNOWN, Ledger, failed, parse_pending, pending_mark)
from workers.outputs import Decorated, Decorator, LineError
from workers.runs import MAX_ERROR_SAMPLES

log = logging.getLogger(__name__)

ContactLookup = Callable[[list[str]], Awaitable[list[dict[str, Any] | None]]]
"""Each userId's {"email", "attributes"} from the run's users list (None for a user without any)."""

CHUNK_LINES = 1000  # lines decided per Redis round trip; also bounds one ledger script call
# Chunks whose sends are still settling: bounds memory whatever the file size (a decorated user is a few
# KB), while keeping enough users in flight (Little's law) that every lane still holds full batches when
# the oldest chunk settles: Braze's 16 lanes x 75 = 1,200 users per round of requests, ~6 rounds queued.
MAX_UNSETTLED_CHUNKS = 8
# Ambiguous outcomes: the destination could not tell whether the send happened (http_delivery.py).
_UNKNOWN_REASONS = frozenset({"delivery_unknown"})
_LINE = itemgetter(1)  # of a (offset, line) pair
ROW_SHAPES = {Recipe.USER_RECOMMENDATIONS: USER_RECOMMENDATIONS, Recipe.ITEM_AFFINITY: SEGMENT_AUDIENCE,
              Recipe.RELATED_ITEMS: RELATED_ITEMS}


@dataclass
class SliceStats:
    """What one slice read: counted per slice so a slice that runs twice overwrites its own numbers."""

    next_offset: int
    finished: bool  # reached the end of the shard
    lines: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    items_without_metadata: int = 0

    def as_record(self) -> dict[str, Any]:
        return {"lines": self.lines, "errors": self.errors, "samples": self.samples,
                "items_without_metadata": self.items_without_metadata, "next_offset": self.next_offset}


class LedgeredDestination(ExportDestination):
    """Wraps a destination without an idempotency key: `sending` before each send, `sent` right after.

    Recording around the send itself keeps the window in which a crash leaves an outcome unknown as
    small as one request; such recipients are reconciled (`Destination.delivery_status`) or reported
    `unknown`, never resent blindly (docs/reference/idempotency.md#per-destination). The job's pending mark, set with
    `sending`, carries that to later runs of the job.
    """

    def __init__(self, inner: Destination, ledger: Ledger, run_id: str, digests: dict[str, str]):
        super().__init__(inner.config, inner.context)
        self.inner = inner
        self.ledger = ledger
        self._prefix = len(run_id) + 1  # message ids are "<run id>:<recipient>"
        self.digests = digests
        self.idempotent = inner.idempotent
        self.export_rows = inner.export_rows
        self.run_id = run_id

    def accepts_row(self, row: ExportRow) -> bool:
        return self.inner.accepts_row(row)

    def partition_key(self, row: ExportRow) -> str:
        return self.inner.partition_key(row)  # type: ignore[arg-type]

    def size_of(self, row: ExportRow) -> int:
        return self.inner.size_of(row)  # type: ignore[arg-type]

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def delivery_status(self, batch: Sequence[ExportRow]) -> Sequence[bool | None]:
        return await self.inner.delivery_status(batch)  # type: ignore[arg-type]

    async def send(self, batch: Sequence[ExportRow]) -> None:
        keys = [row.message_id[self._prefix:] for row in batch]
        await self.ledger.settle(self.config.id, [(k, SENDING) for k in keys],
                                 pending=[(k, pending_mark(self.digests[k], self.run_id)) for k in keys
                                          if k in self.digests])
        try:
            await self.inner.send(batch)
        except Exception as err:
            delivered = getattr(err, "rejected", None) is not None and [
                k for i, k in enumerate(keys) if i not in err.rejected and i not in err.retry]  # type: ignore[attr-defined]
            if delivered:
                await self._sent(delivered)
            raise
        await self._sent(keys)

    async def _sent(self, keys: list[str]) -> None:
        await self.ledger.settle(self.config.id, [(k, SENT) for k in keys],
                                 [(k, self.digests[k]) for k in keys if k in self.digests])


class Exporter:
    """Pushes a run's decorated output through each of the job's destinations, once per recipient."""

    def __init__(self, *, job: str, run_id: str, recipe: Recipe, decorator: Decorator, ledger: Ledger,
                 destinations: list[Destination], retry: RetryPolicy, contacts: ContactLookup | None = None):
        self.job = job
        self.run_id = run_id
        self.recipe = recipe
        self.decorator = decorator
        self.ledger = ledger
        self.contacts = contacts  # None when the users list held ids only
        self.digests: dict[str, dict[str, str]] = {d.config.id: {} for d in destinations}
        self.destinations = [d if d.idempotent else LedgeredDestination(d, ledger, run_id, self.digests[d.config.id])
                             for d in destinations]
        self.runners = [DestinationRunner(d, d.config.batch_policy(), retry) for d in self.destinations]
        self._settling: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
        self._room = asyncio.Semaphore(MAX_UNSETTLED_CHUNKS)
        self._shape = ROW_SHAPES[recipe]

    async def run(self, batches: AsyncIterator[list[tuple[int, bytes]]], *, start: int, end: int | None,
                  skip_first: bool, deadline: float) -> SliceStats:
        """Export lines starting in [start, end) until the deadline; return where the next slice begins."""
        stats = SliceStats(next_offset=start, finished=False)
        for runner in self.runners:
            await runner.start()
        try:
            line_start, chunk, stop = start, [], None
            async for batch in batches:  # [(offset just past the line, line), …], never empty
                if skip_first:  # a shard that begins mid-line: that line is the previous shard's
                    skip_first, line_start, batch = False, batch[0][0], batch[1:]
                taken = len(batch)
                if end is not None:  # a line starts where the one before it ends: the first at `end` or past it
                    # is the next shard's (bisect: the first line ending at or past `end`, the one after it)
                    taken = 0 if line_start >= end else min(bisect_left(batch, (end,)) + 1, taken)
                done = 0
                while done < taken:  # whole slices of the batch into chunks, not a loop step per line
                    part = batch[done:min(taken, done + CHUNK_LINES - len(chunk))]
                    chunk += map(_LINE, part)
                    line_start, done = part[-1][0], done + len(part)
                    if len(chunk) >= CHUNK_LINES:
                        await self._export_chunk(chunk, stats)
                        chunk, stats.next_offset = [], line_start
                        if time.monotonic() >= deadline:
                            stop = "deadline"
                            break
                if stop is None and taken < len(batch):
                    stop = "end of shard"
                if stop:
                    break
            if chunk:
                await self._export_chunk(chunk, stats)
                stats.next_offset = line_start
            await asyncio.gather(*self._settling)
            if self._failure is not None:
                raise self._failure  # outcomes went unrecorded: the task runs the slice again
            stats.finished = stop != "deadline"
        finally:
            for runner in self.runners:
                await runner.close()
        return stats

    async def _export_chunk(self, chunk: list[bytes], stats: SliceStats) -> None:
        if self._failure is not None:
            raise self._failure
        stats.lines += len(chunk)
        read, errors = [], []
        read_line, decorate = self.decorator.read, self.decorator.decorate
        for raw in chunk:
            result = read_line(raw)
            (errors if type(result) is LineError else read).append((result, raw))
        contacts = await self.contacts([key for (key, _), _ in read]) if self.contacts and read else None
        decorated: list[Decorated] = []
        missing = 0
        for i, ((key, line), raw) in enumerate(read):
            result = decorate(key, line, raw, contacts[i] if contacts else None)
            if type(result) is LineError:
                errors.append((result, raw))
            else:
                missing += result.missing_items  # type: ignore[union-attr]
                decorated.append(result)  # type: ignore[arg-type]
        stats.items_without_metadata += missing
        for error, _ in errors:
            stats.errors[error.reason] = stats.errors.get(error.reason, 0) + 1
            if len(stats.samples) < MAX_ERROR_SAMPLES:
                stats.samples.append(f"{error.reason}: {error.message}")
        if not decorated:
            return
        keys = [d.key for d in decorated]
        known = await self.ledger.lookup([r.name for r in self.runners], keys)
        now, shape, job, prefix = time.time(), self._shape, self.job, self.run_id + ":"
        per_user = self.recipe is Recipe.USER_RECOMMENDATIONS
        rows = [ExportRow(shape=shape, source=SourceRef(source_id=job, message_id=prefix + d.key), timestamp=now,
                          record=d.record, user_id=d.key if per_user else None)
                for d in decorated]
        await self._room.acquire()
        pending = []
        for runner in self.runners:
            pending.append(await self._decide_and_submit(runner, decorated, rows, *known[runner.name]))
        task = asyncio.create_task(self._settle(pending))
        self._settling.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._settling.discard(task)
        self._room.release()
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()
            log.error("export %s: recording outcomes failed", self.run_id, exc_info=self._failure)

    async def _decide_and_submit(self, runner: DestinationRunner, decorated: list[Decorated], rows: list[ExportRow],
                                 states: list[str | None], synced: list[str | None],
                                 pending: list[str | None]) -> tuple:
        """Skip what this run settled and what did not change since the last sync; reconcile sends a
        crash cut off; submit the rest."""
        destination = runner.destination
        now_states: list[tuple[str, str]] = []
        resync: list[tuple[str, str]] = []
        sends: list[tuple[list[tuple[str, str]], Ticket]] = []  # (recipient, digest) of each member, in order
        in_doubt: list[tuple[Decorated, ExportRow, ExportRow]] = []  # (item, this run's row, the row asked about)
        in_flight = self.digests[runner.name]
        submitted: list[tuple[Decorated, ExportRow]] = []  # submitted together below: no coroutine per row
        accepts_row = destination.accepts_row
        for item, row, state, last, mark in zip(decorated, rows, states, synced, pending, strict=True):
            key = item.key
            if key in in_flight:
                continue  # the same recipient twice in the output: one send is in flight already
            if state is not None:
                if state == SENT:  # sent in this run already; keep the last-sync hash right after a crash
                    resync.append((key, item.digest))
                    continue
                if state == SENDING and not destination.idempotent:
                    in_doubt.append((item, row, row))  # it may have arrived: never send it blindly again
                    continue
                if state != SENDING and state not in RETRIED_ON_RERUN:
                    continue  # settled: unchanged, unknown, or failed for good
            if last == item.digest:
                now_states.append((key, UNCHANGED))
                continue
            earlier = parse_pending(mark) if mark else None
            if earlier and earlier[0] == item.digest and not destination.idempotent and state is None:
                # An earlier run began sending this very content and never learnt the outcome.
                in_doubt.append((item, row, _as_sent_by(row, earlier[1], key)))
                continue
            if not accepts_row(row):
                now_states.append((key, failed("not_accepted")))
                continue
            in_flight[key] = item.digest
            submitted.append((item, row))
        if submitted:
            sends.append(([(item.key, item.digest) for item, _ in submitted],
                          await runner.submit_batch([row for _, row in submitted])))  # type: ignore[arg-type]
        for (item, row, _), arrived in zip(in_doubt, await _ask(destination, [r for _, _, r in in_doubt]),
                                             strict=True):
            if arrived is None:
                now_states.append((item.key, UNKNOWN))
            elif arrived:
                now_states.append((item.key, SENT))
                resync.append((item.key, item.digest))
            else:  # the destination says it never arrived: send it now
                in_flight[item.key] = item.digest
                sends.append(([(item.key, item.digest)], await runner.submit_batch([row])))  # type: ignore[list-item]
        return runner, now_states, resync, sends

    async def _settle(self, pending: list[tuple]) -> None:
        """Record how each submitted recipient settled, once its chunk's sends are all done."""
        for runner, states, synced, sends in pending:
            # A destination without an idempotency key had `sent` (and its digest) recorded around the
            # send itself (LedgeredDestination); only its failures are left to record here.
            ledgered = not runner.destination.idempotent
            for members, ticket in sends:
                settlements = await ticket
                if ticket.delivered:
                    if not ledgered:
                        states += [(key, SENT) for key, _ in members]
                        synced += members
                    continue
                for (key, digest), settlement in zip(members, settlements, strict=True):
                    if settlement.outcome is Outcome.DELIVERED:
                        if not ledgered:
                            states.append((key, SENT))
                            synced.append((key, digest))
                    else:
                        states.append((key, _state_of(settlement, runner.destination.idempotent)))
            await self.ledger.settle(runner.name, states, synced)
            in_flight = self.digests[runner.name]
            for members, _ in sends:  # only now: a later chunk's lookup must find them in the ledger
                for key, _ in members:
                    in_flight.pop(key, None)


def _as_sent_by(row: ExportRow, run_id: str, key: str) -> ExportRow:
    """The row as run `run_id` sent it: message ids are "<run id>:<recipient>"."""
    return msgspec.structs.replace(row, source=msgspec.structs.replace(row.source, message_id=f"{run_id}:{key}"))


async def _ask(destination: Destination, rows: list[ExportRow]) -> Sequence[bool | None]:
    """The destination's word on earlier sends; a failure to answer is "cannot tell"."""
    if not rows:
        return []
    try:
        found = await destination.delivery_status(rows)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - asking is best effort: the recipients stay `unknown`, reported
        log.warning("%s: could not reconcile %d earlier sends", destination.config.id, len(rows), exc_info=True)
        return [None] * len(rows)
    return found if len(found) == len(rows) else [None] * len(rows)


def _state_of(settlement: Settlement, idempotent: bool) -> str:
    if settlement.outcome is Outcome.DELIVERED:
        return SENT
    if settlement.reason in _UNKNOWN_REASONS or (settlement.reason == "internal_error" and not idempotent):
        return UNKNOWN  # a bug mid-send says nothing about whether it arrived
    return failed(settlement.reason or "unknown_reason")


