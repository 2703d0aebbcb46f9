"""Export slices: the byte ranges of a run's output that one task exports, the per-shard lock, and the cursor.

An export task reads for at most `workers.export_slice_secs`, records where it stopped, and hands the
rest to a new task, so no task outlives the broker's visibility timeout (docs/reference/platform.md#redis-and-celery: a
longer task runs twice). The lock keeps two deliveries of a shard from sending at once; the ledger makes a slice
that runs twice send nothing twice.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import orjson

from workers.keys import lock_key, run_key, slices_key

# Extends the lock only while this holder still owns it, and refreshes the run's heartbeat with it.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('HSET', KEYS[2], 'heartbeat_at', ARGV[3])
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class SliceBusy(Exception):
    """Another delivery holds this shard: try again after the lock's TTL at the latest."""


def shard_bounds(size: int, shards: int, shard: int) -> tuple[int, int | None]:
    """[start, end) in bytes of a shard; a shard owns the lines that start in it (end None: to the end)."""
    start = shard * size // shards
    return start, (None if shard == shards - 1 else (shard + 1) * size // shards)


def slice_field(shard: int, start: int) -> str:
    return f"{shard}:{start}"


def is_done(client: Any, run_id: str, shard: int, start: int) -> bool:
    return bool(client.hexists(slices_key(run_id), slice_field(shard, start)))


def walk(slices: dict[str, dict[str, Any]], size: int, shards: int) -> list[dict[str, Any]]:
    """The slices on each shard's chain, from its start along `next_offset` links.

    A slice run twice may stop elsewhere the second time (its deadline is time-based); following the
    links from the start counts every line exactly once whichever run's record is kept.
    """
    chain = []
    for shard in range(shards):
        start, _ = shard_bounds(size, shards, shard)
        seen = set()
        while (record := slices.get(slice_field(shard, start))) is not None and start not in seen:
            seen.add(start)
            chain.append(record)
            if record.get("finished"):
                break
            start = record["next_offset"]
    return chain


def load_slices(client: Any, run_id: str) -> dict[str, dict[str, Any]]:
    return {k.decode(): orjson.loads(v) for k, v in client.hgetall(slices_key(run_id)).items()}


class ShardLock:
    """A Redis lock on one shard of a run, kept alive by a thread while the slice runs.

    Each extension also refreshes the run's `heartbeat_at`: a run that stops beating for longer than
    `workers.run_lease_secs` was abandoned (steps.py), and the next run of its job stops waiting for it.
    """

    def __init__(self, client: Any, run_id: str, shard: int, ttl_secs: float):
        self.redis = client
        self.key = lock_key(run_id, shard)
        self.run_key = run_key(run_id)
        self.ttl_ms = int(ttl_secs * 1000)
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._extend = client.register_script(_EXTEND)
        self._release = client.register_script(_RELEASE)

    def __enter__(self) -> ShardLock:
        if not self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
            raise SliceBusy(self.key)
        self.redis.hset(self.run_key, "heartbeat_at", time.time())
        self._thread = threading.Thread(target=self._keep_alive, name=f"lock:{self.key}", daemon=True)
        self._thread.start()
        return self

    def _keep_alive(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                self._extend(keys=[self.key, self.run_key], args=[self.token, self.ttl_ms, time.time()])
            except Exception:  # noqa: BLE001 - a missed extension only shortens the lock; the next one retries
                continue

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._release(keys=[self.key], args=[self.token])
