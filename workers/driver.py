"""Runs a job to completion in this process (`hub jobs run --eager`, the embedded mode): the same steps, no worker.

Celery's own eager mode is not used: its `retry` re-runs a task at once and recursively, ignoring the
countdown, so polling a batch job for an hour would recurse thousands of times. Here a countdown is a
sleep, which is fine for a CLI process and never happens in a worker. The export slices call
`asyncio.run`: call `run_eagerly` from a thread when an event loop is already running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from hub.errors import HubError
from workers import context, steps
from workers.exports import export_slice
from workers.runs import RunState
from workers.slices import SliceBusy
from workers.tasks import MAX_TRANSIENT_RETRIES, is_transient

log = logging.getLogger(__name__)
T = TypeVar("T")


def run_eagerly(job_name: str, run_id: str, *, sleep: Callable[[float], None] = time.sleep,
                on_state: Callable[[str], None] | None = None) -> RunState:
    """Start (or resume) `run_id` of `job_name` and drive it to a final state."""
    lock_wait = context.hub_config().workers.lock_ttl_secs / 2

    def step(fn: Callable[..., T], *args: Any) -> T:
        for attempt in range(MAX_TRANSIENT_RETRIES + 1):
            try:
                return fn(*args)
            except Exception as err:
                if not is_transient(err) or attempt == MAX_TRANSIENT_RETRIES:
                    raise
                log.warning("run %s: %s; retrying", run_id, err)
                sleep(min(60, 2**attempt))
        raise AssertionError("unreachable")

    steps.start(job_name, run_id)
    try:
        for name, fn in (("preparing", steps.prepare), ("submitting", steps.submit)):
            if on_state:
                on_state(name)
            step(fn, run_id)
        if on_state:
            on_state("waiting for the batch job")
        while (pending := step(steps.poll, run_id)) is not None:
            sleep(pending.secs)
        if on_state:
            on_state("exporting")
        for shard in range(int(steps.runs().get(run_id)["shards"])):
            offsets: list[int | None] = [None]
            while offsets:
                offset = offsets.pop()
                try:
                    step(export_slice, run_id, shard, offset, offsets.append)
                except SliceBusy:  # a worker is exporting this shard too: let it, then check again
                    offsets.append(offset)
                    sleep(lock_wait)
    except steps.RunOver:
        pass
    except (steps.RunFailed, HubError) as err:  # bad input, catalog or config: the run's reason, not a crash
        steps.runs().fail(run_id, str(err))
    except Exception as err:
        steps.runs().fail(run_id, f"{type(err).__name__}: {err}")
        raise
    return RunState(steps.runs().get(run_id)["state"])
