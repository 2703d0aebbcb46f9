"""The `exports.push` task: export one slice of a run's output, hand on the rest, finish the run at the end."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from connectors.aws import AwsClients
from hub.connector import Context
from workers import context, objects, slices
from workers.app import app
from workers.catalog import load_catalog
from workers.config import BatchJobConfig
from workers.exporter import Exporter, SliceStats
from workers.keys import contacts_key
from workers.ledger import Ledger
from workers.notifications import notify
from workers.outputs import Decorator
from workers.steps import job_of, runs
from workers.tasks import RunTask, guarded


# The export holds a catalog and thousands of in-flight records, all containers: with the default gen-0
# threshold (700 allocations) the cycle collector rescans them constantly and took over half the CPU
# of an export in bench/braze_export.py. Records are acyclic, so collecting rarely loses nothing.
GC_THRESHOLD_WHILE_EXPORTING = 50_000


@contextlib.contextmanager
def _rare_gc() -> Iterator[None]:
    previous = gc.get_threshold()
    gc.freeze()  # the catalog and config loaded so far live as long as the slice: stop rescanning them
    gc.set_threshold(GC_THRESHOLD_WHILE_EXPORTING, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (a dependency off Windows): an export is a few thousand requests a
    second, and the stock loop's per-callback and socket work was a tenth of its CPU (bench/braze_export.py)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@functools.lru_cache(maxsize=2)
def _catalog(uri: str, columns: tuple[str, ...], run_id: str) -> dict[str, dict[str, Any]]:
    # Per run: every slice of a run decorates from the same snapshot, a new run reads the file again.
    # An S3 client only for S3: building one costs a worker process a third of a second.
    return load_catalog(uri, columns, context.sync_client("s3") if objects.Location.parse(uri).scheme == "s3" else None)


def export_slice(run_id: str, shard: int, offset: int | None, enqueue: Callable[[int], None]) -> SliceStats | None:
    """Export the slice of `shard` starting at `offset` (None: the shard's start); None if already done.

    Raises SliceBusy while another delivery exports this shard. Order matters for redelivery: the
    continuation is enqueued before the slice is recorded as done, so a crash in between repeats the
    slice (sending nothing twice) rather than losing the rest of the shard.
    """
    job, run = job_of(run_id)
    workers = context.hub_config().workers
    size, shards = int(run["output_bytes"]), int(run["shards"])
    shard_start, shard_end = slices.shard_bounds(size, shards, shard)
    start = shard_start if offset is None else offset
    client = context.sync_redis()
    with slices.ShardLock(client, run_id, shard, workers.lock_ttl_secs):
        if slices.is_done(client, run_id, shard, start):
            return None
        catalog = (_catalog(job.items_catalog, tuple(job.item_metadata), run_id) if job.items_catalog else None)
        # A shard after the first may begin mid-line: read from the byte before and drop that partial line.
        skip_first = offset is None and shard_start > 0
        read_from = start - 1 if skip_first else start
        deadline = time.monotonic() + workers.export_slice_secs
        with _rare_gc(), asyncio.Runner(loop_factory=_loop_factory()) as runner:
            stats = runner.run(_export(job, run_id, run, catalog, read_from, shard_end, skip_first, deadline))
        if not stats.finished:
            enqueue(stats.next_offset)
        runs().record_slice(run_id, shard, start, {**stats.as_record(), "finished": stats.finished})
    if stats.finished and runs().shard_done(run_id, shard, shards):
        state = runs().finish(run_id)
        report = runs().report(run_id)
        notify(context.hub_config().notifications, "export.finished", job.name, run_id, state=state.value,
               destinations={name: vars(counts) for name, counts in report.destinations.items()})
    return stats


async def _export(job: BatchJobConfig, run_id: str, run: dict[str, str], catalog: Any, start: int, end: int | None,
                  skip_first: bool, deadline: float) -> SliceStats:
    config = context.hub_config()
    redis = context.async_redis()
    aws = context.aws_clients()
    try:
        ledger = Ledger(redis, run_id, job.name, ttl_secs=config.workers.state_ttl_days * 86_400,
                        sync_ttl_secs=config.workers.sync_ttl_days * 86_400)
        destinations = [context.application().build_destination(c, Context(resources={AwsClients: aws}))
                        for c in job.destinations]

        async def contacts(keys: list[str]) -> list[dict[str, Any] | None]:
            found = await redis.hmget(contacts_key(run_id), keys)
            return [orjson.loads(v) if v is not None else None for v in found]

        exporter = Exporter(job=job.name, run_id=run_id, recipe=job.recipe, ledger=ledger,
                            contacts=contacts if run.get("contacts") == "1" else None,
                            decorator=Decorator(job.recipe, job.name, run_id, catalog, job.keep_items_without_metadata,
                                                views_only=all(getattr(d, "reads_views", False) for d in destinations)),
                            destinations=destinations, retry=config.retry.policy())
        output = run["output_uri"]
        s3 = await aws.client("s3") if output.startswith("s3://") else None
        batches = objects.line_batches(objects.read_range(output, start, s3), start)
        return await exporter.run(batches, start=start, end=end, skip_first=skip_first, deadline=deadline)
    finally:
        await redis.aclose()
        await aws.close()


@app.task(bind=True, base=RunTask, name="exports.push")
def push(self: RunTask, run_id: str, shard: int, offset: int | None = None) -> None:
    """Export one slice of a shard of the run's output; enqueue the next slice; finish the run after the last."""
    with guarded(self, run_id):
        try:
            export_slice(run_id, shard, offset, lambda next_offset: push.delay(run_id, shard, next_offset))
        except slices.SliceBusy:
            # The holder is alive (it extends its lock) or dead (the lock expires within its TTL).
            raise self.retry(countdown=context.hub_config().workers.lock_ttl_secs / 2, max_retries=None) from None
