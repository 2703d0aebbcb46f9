"""A thread of its own for one resource's blocking calls (a SQLite connection, a file), awaited from the event loop."""

from __future__ import annotations

import asyncio
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any


class WorkerThread:
    """Runs each call on one thread, in the order they were made, and sets its outcome on the caller's future
    with `call_soon_threadsafe`.

    Cheaper than `run_in_executor` on a one-thread pool, whose concurrent.futures plumbing (a Future with its
    lock and condition, chained to an asyncio one) cost 2-3x the CPU per call: ~70-90 against ~10-40 µs on
    uvloop, the loop `hub run` uses; the identity store makes one or two calls per batch, a file one per write.
    """

    def __init__(self, name: str):
        self.name = name
        self._calls: queue.SimpleQueue = queue.SimpleQueue()  # (loop, future, function, args); None: stop
        self._thread: threading.Thread | None = None  # started by the first call after construction or `stop`
        self._end: weakref.finalize | None = None  # asks the thread to end, once: by `stop`, or when collected

    def call(self, function: Callable[..., Any], *args: Any) -> asyncio.Future:
        """`function(*args)` on the thread; await the returned future for its result or exception."""
        if self._thread is None or not self._thread.is_alive():  # not alive: e.g. this is a forked child
            if self._end is not None:
                self._end.detach()  # a forked child's copy of the parent's thread: nothing to end
            self._calls = queue.SimpleQueue()  # a fresh one: a fork may have copied one mid-use
            # A daemon, as an executor's threads are not: a process that never stopped it still exits (what
            # was not acknowledged is redelivered, as after a kill).
            self._thread = threading.Thread(target=self._serve, args=(self._calls,), name=self.name, daemon=True)
            self._thread.start()
            # Never stopped (a destination left unclosed): the thread ends once this object is collected, as an
            # executor's do, instead of one idle thread per forgotten resource in a long-lived worker.
            self._end = weakref.finalize(self, self._calls.put, None)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._calls.put((loop, future, function, args))
        return future

    def stop(self) -> None:
        """End the thread once the calls made before have run (a later call starts another)."""
        if self._thread is not None:
            self._end()  # type: ignore[misc]  # set with the thread
            self._thread.join()
            self._thread = None

    @staticmethod
    def _serve(calls: queue.SimpleQueue) -> None:
        while (call := calls.get()) is not None:
            loop, future, function, args = call
            try:
                settle, outcome = _set_result, function(*args)
            except BaseException as err:  # handed to the caller, as an executor does
                settle, outcome = _set_exception, err
            try:
                loop.call_soon_threadsafe(settle, future, outcome)
            except RuntimeError:  # the loop has closed: no one waits for this outcome any more
                pass


def _set_result(future: asyncio.Future, result: Any) -> None:
    if not future.done():  # the caller may have been cancelled meanwhile
        future.set_result(result)


def _set_exception(future: asyncio.Future, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
