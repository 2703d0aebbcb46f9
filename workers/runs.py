"""A run's record in Redis (state, batch job, per-destination outcomes) and the report `hub jobs status` prints."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from workers import slices
from workers.keys import index_key, run_key, shards_key, slices_key

MAX_ERROR_SAMPLES = 5  # malformed output lines quoted in the report, per slice


class RunState(str, enum.Enum):
    """Where a run is; the last three are final."""

    QUEUED = "queued"
    PREPARING = "preparing"  # writing the batch input
    INFERRING = "inferring"  # the Personalize batch job runs
    EXPORTING = "exporting"  # reading its output and pushing it
    TRAINING = "training"  # a retraining run: the solution version is being created
    SUCCEEDED = "succeeded"  # every recipient sent or unchanged
    PARTIAL = "partial"  # done, but some recipients failed or have an unknown outcome (or a gate kept the campaign)
    FAILED = "failed"  # the run could not complete (input, batch job, configuration)

    @property
    def final(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.PARTIAL, RunState.FAILED)


def counter_field(destination: str, state: str) -> str:
    """Run-hash field counting recipients of `destination` in `state` ("|" never appears in a state)."""
    return f"dest|{destination}|{state}"


@dataclass
class DestinationCounts:
    """Recipients of one destination by outcome."""

    sent: int = 0
    unchanged: int = 0
    unknown: int = 0  # a send may or may not have happened (crash mid-send, ambiguous answer): not repeated
    sending: int = 0  # in flight right now (or, after the run, never settled: counted as unknown)
    failed: dict[str, int] = field(default_factory=dict)  # reason code → recipients

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())


@dataclass
class Report:
    """Everything `hub jobs status RUN` shows."""

    run_id: str
    fields: dict[str, str]
    destinations: dict[str, DestinationCounts]
    lines_out: int = 0
    lines_with_errors: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    items_without_metadata: int = 0

    @property
    def state(self) -> RunState:
        return RunState(self.fields.get("state", RunState.QUEUED.value))

    @property
    def users_in(self) -> int:
        return int(self.fields.get("users_in", 0))

    @property
    def problems(self) -> int:
        return sum(d.failed_total + d.unknown + d.sending for d in self.destinations.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, **self.fields, "lines_out": self.lines_out,
            "lines_with_errors": self.lines_with_errors, "error_samples": self.error_samples,
            "items_without_metadata": self.items_without_metadata,
            "destinations": {k: vars(v) for k, v in self.destinations.items()},
        }


class Runs:
    """Run records on a synchronous Redis client; every write is idempotent (tasks may run twice)."""

    def __init__(self, client: redis.Redis, ttl_secs: int):
        self.redis = client
        self.ttl_secs = ttl_secs

    def create(self, run_id: str, job: str, kind: str) -> bool:
        """Record a new run; False (and no change) when it already exists."""
        key = run_key(run_id)
        now = time.time()
        if not self.redis.hsetnx(key, "job", job):
            return False
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={"kind": kind, "state": RunState.QUEUED.value, "created_at": now, "updated_at": now})
        pipe.expire(key, self.ttl_secs)
        pipe.zadd(index_key(job), {run_id: now})
        pipe.expire(index_key(job), self.ttl_secs)
        pipe.execute()
        return True

    @staticmethod
    def last_beat(record: dict[str, str]) -> float:
        """When the run last showed it was alive: its heartbeat (export locks) or its last update."""
        return max(float(record.get("heartbeat_at") or 0), float(record.get("updated_at") or 0))

    def get(self, run_id: str) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.redis.hgetall(run_key(run_id)).items()}

    def update(self, run_id: str, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        self.redis.hset(run_key(run_id), mapping={k: str(v) if not isinstance(v, (int, float)) else v
                                                   for k, v in fields.items()})

    def set_state(self, run_id: str, state: RunState, **fields: Any) -> None:
        """Move to `state` unless the run is already final (a late duplicate task must not reopen it)."""
        current = self.get(run_id).get("state")
        if current and RunState(current).final and current != state.value:
            return
        self.update(run_id, state=state.value, **fields)

    def fail(self, run_id: str, message: str) -> None:
        self.set_state(run_id, RunState.FAILED, error=message[:2000], finished_at=time.time())

    def record_slice(self, run_id: str, shard: int, offset: int, stats: dict[str, Any]) -> None:
        """A slice's line counts, keyed by where it started: a slice run twice overwrites itself."""
        pipe = self.redis.pipeline()
        pipe.hset(run_key(run_id), "heartbeat_at", time.time())  # the next slice is queued: still alive
        pipe.hset(slices_key(run_id), f"{shard}:{offset}", orjson.dumps(stats))
        pipe.expire(slices_key(run_id), self.ttl_secs)
        pipe.execute()

    def shard_done(self, run_id: str, shard: int, shards: int) -> bool:
        """Mark a shard finished; True when every shard is."""
        pipe = self.redis.pipeline()
        pipe.sadd(shards_key(run_id), shard)
        pipe.expire(shards_key(run_id), self.ttl_secs)
        pipe.scard(shards_key(run_id))
        return pipe.execute()[-1] >= shards

    def finish(self, run_id: str) -> RunState:
        """Final state from the outcomes: partial when any recipient failed or is unknown."""
        state = RunState.PARTIAL if self.report(run_id).problems else RunState.SUCCEEDED
        self.set_state(run_id, state, finished_at=time.time())
        return RunState(self.get(run_id)["state"])

    def reconsider(self, run_id: str) -> RunState:
        """A finished run's state again after its outcomes changed (`hub jobs resolve`); a failed run stays failed."""
        state = RunState(self.get(run_id)["state"])
        if state in (RunState.PARTIAL, RunState.SUCCEEDED):
            state = RunState.PARTIAL if self.report(run_id).problems else RunState.SUCCEEDED
            self.update(run_id, state=state.value)
        return state

    def recent(self, job: str, count: int = 1) -> list[str]:
        return [r.decode() for r in self.redis.zrevrange(index_key(job), 0, count - 1)]

    def report(self, run_id: str) -> Report:
        fields = self.get(run_id)
        destinations: dict[str, DestinationCounts] = {}
        plain = {}
        for name, value in fields.items():
            if not name.startswith("dest|"):
                plain[name] = value
                continue
            _, destination, state = name.split("|", 2)
            counts = destinations.setdefault(destination, DestinationCounts())
            count = int(value)
            if state.startswith("failed:"):
                if count:
                    counts.failed[state.removeprefix("failed:")] = count
            elif hasattr(counts, state):
                setattr(counts, state, count)
        report = Report(run_id, plain, destinations)
        size, shards = int(plain.get("output_bytes", 0)), int(plain.get("shards", 1))
        for stats in slices.walk(slices.load_slices(self.redis, run_id), size, shards):
            report.lines_out += stats.get("lines", 0)
            report.items_without_metadata += stats.get("items_without_metadata", 0)
            for reason, count in stats.get("errors", {}).items():
                report.lines_with_errors[reason] = report.lines_with_errors.get(reason, 0) + count
            room = max(0, MAX_ERROR_SAMPLES - len(report.error_samples))
            report.error_samples += stats.get("samples", [])[:room]
        return report
