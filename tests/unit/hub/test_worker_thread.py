"""WorkerThread: calls run in order on one thread, outcomes reach the caller, a stopped or forked one restarts."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from hub.worker_thread import WorkerThread


async def test_calls_run_in_order_on_one_thread_and_hand_back_results_and_errors():
    worker = WorkerThread("test")
    seen: list[int] = []
    results = await asyncio.gather(*(worker.call(lambda n=n: seen.append(n) or threading.current_thread().name)
                                     for n in range(20)))
    assert seen == list(range(20)) and set(results) == {"test"}
    with pytest.raises(ValueError, match="bad"):
        await worker.call(int, "bad")
    worker.stop()


async def test_a_cancelled_caller_leaves_the_thread_serving_and_stop_lets_a_later_call_start_another():
    worker = WorkerThread("test")
    slow = asyncio.ensure_future(worker.call(time.sleep, 0.05))
    await asyncio.sleep(0.01)
    slow.cancel()
    assert await worker.call(lambda: 42) == 42
    worker.stop()
    assert await worker.call(lambda: 43) == 43
    worker.stop()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
async def test_a_forked_child_gets_a_thread_of_its_own():
    worker = WorkerThread("test")
    assert await worker.call(os.getpid) == os.getpid()
    child = os.fork()
    if child == 0:  # the child: no thread survived the fork; a call must start one rather than hang
        os._exit(0 if asyncio.run(asyncio.wait_for(_pid_of(worker), 5)) == os.getpid() else 1)
    assert os.waitpid(child, 0)[1] == 0
    worker.stop()


async def _pid_of(worker: WorkerThread) -> int:
    return await worker.call(os.getpid)


async def test_a_worker_thread_never_stopped_ends_once_it_is_collected():
    import gc

    worker = WorkerThread("forgotten")
    assert await worker.call(lambda: 1) == 1
    thread = worker._thread
    del worker
    gc.collect()
    thread.join(2)
    assert not thread.is_alive()
