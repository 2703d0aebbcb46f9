"""PartitionedBatcher: size, bytes, age, partitions, order, one batch in flight, backpressure."""

from __future__ import annotations

import asyncio

import pytest

from hub.delivery.batcher import PartitionedBatcher


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_full_batch_is_ready_at_once():
    batcher = PartitionedBatcher(max_items=3, max_wait_secs=60)
    for i in range(7):
        batcher.put_nowait("k", i)
    assert await asyncio.wait_for(batcher.next_batch(), 1) == ("k", [0, 1, 2])
    batcher.release("k")
    assert await asyncio.wait_for(batcher.next_batch(), 1) == ("k", [3, 4, 5])
    assert batcher.pending == 1


async def test_partial_batch_waits_for_max_wait():
    clock = Clock()
    batcher = PartitionedBatcher(max_items=10, max_wait_secs=5, clock=clock)
    batcher.put_nowait("k", "a")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(batcher.next_batch(), 0.05)
    clock.now = 5.0
    assert await asyncio.wait_for(batcher.next_batch(), 1) == ("k", ["a"])


async def test_partitions_are_batched_separately_and_keep_order():
    batcher = PartitionedBatcher(max_items=2, max_wait_secs=0)
    for i in range(4):
        batcher.put_nowait(i % 2, i)
    seen = {}
    for _ in range(2):
        key, batch = await asyncio.wait_for(batcher.next_batch(), 1)
        seen[key] = batch
    assert seen == {0: [0, 2], 1: [1, 3]}


async def test_busy_partition_waits_for_release_but_others_proceed():
    batcher = PartitionedBatcher(max_items=1, max_wait_secs=0)
    batcher.put_nowait("a", 1)
    batcher.put_nowait("a", 2)
    batcher.put_nowait("b", 3)
    first = await batcher.next_batch()
    second = await batcher.next_batch()
    assert first == ("a", [1]) and second == ("b", [3])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(batcher.next_batch(), 0.05)
    batcher.release("a")
    assert await asyncio.wait_for(batcher.next_batch(), 1) == ("a", [2])


async def test_max_bytes_splits_batches():
    batcher = PartitionedBatcher(max_items=100, max_wait_secs=60, max_bytes=10, size_of=len)
    for word in ["aaaa", "bbbb", "cccc", "dd"]:
        batcher.put_nowait("k", word)
    key, batch = await asyncio.wait_for(batcher.next_batch(), 1)
    assert batch == ["aaaa", "bbbb"]  # a third would pass 10 bytes


async def test_put_blocks_at_max_pending_until_a_batch_leaves():
    batcher = PartitionedBatcher(max_items=2, max_wait_secs=60, max_pending=2)
    await batcher.put("k", 1)
    await batcher.put("k", 2)
    third = asyncio.create_task(batcher.put("k", 3))
    await asyncio.sleep(0.02)
    assert not third.done()
    await batcher.next_batch()
    await asyncio.wait_for(third, 1)
    assert batcher.pending == 1


async def test_order_kept_within_partition_under_random_interleaving():
    import random

    rng = random.Random(7)
    batcher = PartitionedBatcher(max_items=4, max_wait_secs=0)
    expected: dict[int, list[int]] = {k: [] for k in range(5)}
    for i in range(500):
        key = rng.randrange(5)
        expected[key].append(i)
        batcher.put_nowait(key, i)
    got: dict[int, list[int]] = {k: [] for k in range(5)}
    while batcher.pending:
        key, batch = await asyncio.wait_for(batcher.next_batch(), 1)
        assert len(batch) <= 4
        got[key].extend(batch)
        batcher.release(key)
    assert got == expected
