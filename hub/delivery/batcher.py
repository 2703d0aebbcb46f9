"""A partitioned batcher: batches by size, bytes and age; order and one batch in flight per partition."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


# A queued item as (item, its size, when it was added): a plain tuple, as a class's __init__ per queued event
# cost a Python call more than the tuple.
_Pending = tuple[T, int, float]
_ITEM, _SIZE, _ADDED = 0, 1, 2


class PartitionedBatcher(Generic[T]):
    """Collects items per partition key and hands out batches.

    A batch is ready when its partition holds `max_items` items (or `max_bytes`), or when the
    partition's oldest item has waited `max_wait_secs`. A partition with a batch in flight hands out
    nothing more until `release(key)`, which keeps order within a partition across retries. `put`
    waits while `max_pending` items are queued, so producers feel backpressure instead of memory growing.
    """

    def __init__(
        self,
        *,
        max_items: int,
        max_wait_secs: float,
        max_bytes: int | None = None,
        max_pending: int = 10_000,
        size_of: Callable[[T], int] = lambda _: 0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.max_items = max_items
        self.max_wait_secs = max_wait_secs
        self.max_bytes = max_bytes
        self.max_pending = max_pending
        self._size_of = size_of
        self._clock = clock
        self._queues: dict[Hashable, deque[_Pending[T]]] = {}
        self._queued_bytes: dict[Hashable, int] = {}
        self._busy: set[Hashable] = set()
        self._full: deque[Hashable] = deque()  # keys that reached a size limit, in that order
        self._deadlines: list[tuple[float, int, Hashable]] = []  # heap; may hold stale entries
        self._seq = itertools.count()
        self._pending = 0
        self._changed = asyncio.Event()
        self._has_space = asyncio.Event()

    @property
    def pending(self) -> int:
        return self._pending

    async def put(self, key: Hashable, item: T) -> None:
        """Queue an item, waiting while the batcher is at `max_pending`."""
        await self.wait_for_room()
        self.put_nowait(key, item)

    async def wait_for_room(self) -> None:
        """Wait while the batcher is at `max_pending`."""
        while self._pending >= self.max_pending:
            self._has_space.clear()
            await self._has_space.wait()

    def now(self) -> float:
        """The batcher's clock (what `put_nowait`'s `now` is read from)."""
        return self._clock()

    def put_nowait(self, key: Hashable, item: T, now: float | None = None) -> None:
        """Queue an item now (`now`: the clock's reading, when the caller queues many at once)."""
        size = self._size_of(item) if self.max_bytes is not None else 0  # sizes count only against max_bytes
        if now is None:
            now = self._clock()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._queued_bytes[key] = 0
        if not queue:
            heapq.heappush(self._deadlines, (now + self.max_wait_secs, next(self._seq), key))
        queue.append((item, size, now))
        queued_bytes = self._queued_bytes[key] = self._queued_bytes[key] + size
        self._pending += 1
        crossed_bytes = self.max_bytes is not None and queued_bytes - size < self.max_bytes <= queued_bytes
        if len(queue) == self.max_items or crossed_bytes:  # just became full: listed once
            self._full.append(key)
        self._changed.set()

    def _is_full(self, key: Hashable) -> bool:
        queue = self._queues.get(key)
        if not queue:
            return False
        if len(queue) >= self.max_items:
            return True
        return self.max_bytes is not None and self._queued_bytes[key] >= self.max_bytes

    async def next_batch(self) -> tuple[Hashable, list[T]]:
        """Wait for the next ready batch; its partition is busy until `release`."""
        while True:
            ready = self._take_ready()
            if ready is not None:
                return ready
            self._changed.clear()
            timeout = None
            if self._deadlines:
                timeout = max(0.0, self._deadlines[0][0] - self._clock())
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that arrives as the
                # event is set (gh-86296), which left a cancelled dispatcher waiting forever.
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            except TimeoutError:
                pass

    def _take_ready(self) -> tuple[Hashable, list[T]] | None:
        skipped: list[Hashable] = []
        try:
            while self._full:
                key = self._full.popleft()
                if key in self._busy:
                    skipped.append(key)
                elif self._is_full(key):
                    return key, self._take(key)
        finally:
            self._full.extendleft(reversed(skipped))
        now = self._clock()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, key = heapq.heappop(self._deadlines)
            queue = self._queues.get(key)
            if not queue or key in self._busy:
                continue  # stale, or rescheduled by release()
            due = queue[0][_ADDED] + self.max_wait_secs
            if due > now:  # the item this entry was for already left in an earlier batch
                heapq.heappush(self._deadlines, (due, next(self._seq), key))
                continue
            return key, self._take(key)
        return None

    def _take(self, key: Hashable) -> list[T]:
        queue = self._queues[key]
        batch: list[T] = []
        taken_bytes = 0
        while queue and len(batch) < self.max_items:
            size = queue[0][_SIZE]
            if batch and self.max_bytes is not None and taken_bytes + size > self.max_bytes:
                break
            batch.append(queue.popleft()[_ITEM])
            taken_bytes += size
        self._queued_bytes[key] -= taken_bytes
        self._pending -= len(batch)
        self._busy.add(key)
        if not queue:
            del self._queues[key], self._queued_bytes[key]
        if self._pending < self.max_pending:
            self._has_space.set()
        return batch

    def remove(self, key: Hashable, which: Callable[[T], bool]) -> list[T]:
        """Take the items of `key`'s queue for which `which` is true out of the batcher, in order."""
        queue = self._queues.get(key)
        if not queue:
            return []
        kept: deque[_Pending[T]] = deque()
        removed: list[T] = []
        for pending in queue:
            item, size, _ = pending
            if which(item):
                removed.append(item)
                self._queued_bytes[key] -= size
            else:
                kept.append(pending)
        if removed:
            self._pending -= len(removed)
            if kept:
                self._queues[key] = kept
            else:
                del self._queues[key], self._queued_bytes[key]
            if self._pending < self.max_pending:
                self._has_space.set()
        return removed

    def release(self, key: Hashable) -> None:
        """The partition's batch settled: its next batch may go."""
        self._busy.discard(key)
        queue = self._queues.get(key)
        if queue:
            heapq.heappush(self._deadlines, (queue[0][_ADDED] + self.max_wait_secs, next(self._seq), key))
            if self._is_full(key):
                self._full.append(key)
        self._changed.set()
