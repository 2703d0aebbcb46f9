"""What the console pages show, read from a running hub: activity, readiness, dead letter, jobs, config.

The one module that knows the hub's internals; the routes and templates only see plain dicts.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from connectors.destinations.personalize.readiness import MIN_INTERACTIONS, MIN_USERS_WITH_TWO
from personalize_hub.replay import ReplayFilter, read_dead_letter, replay
from personalize_hub.console.activity import Activity, Snapshot
from personalize_hub.console.redact import Redactor
from personalize_hub.console.tap import SETTLED

log = logging.getLogger(__name__)

MINUTE, HOUR = 60.0, 3600.0
IDENTITY_PROBE_SECS = 1.0


@dataclass(frozen=True)
class DeadLetterQuery:
    """A dead-letter filter from the page or the API; empty fields match everything."""

    reason: str | None = None
    source: str | None = None
    destination: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        if self.reason and record.get("reason") != self.reason:
            return False
        if self.source and (record.get("source") or {}).get("source_id") != self.source:
            return False
        if self.destination and record.get("destination") != self.destination:
            return False
        return ReplayFilter(since=self.since, until=self.until).matches(record)


def _by_label(values: Snapshot, metric: str) -> dict[str, float]:
    return {key[1]: value for key, value in values.items() if key[0] == metric and len(key) == 2}


class ConsoleBackend:
    """Reads the hub for the console; `hub` is a runtime.Hub (started, or delivery-only for `hub console`)."""

    def __init__(self, hub: Any, activity: Activity, redact: Redactor, routes_by_source: dict[str, list[str]],
                 config_path: str | None = None):
        self.hub = hub
        self.routes_by_source = routes_by_source
        self.config = hub.config
        self.activity = activity
        self.redact = redact
        self.config_path = config_path
        self._replay_lock = asyncio.Lock()
        self.replay_progress: dict[str, Any] = {"running": False, "done": 0, "total": 0, "last": None}

    # -- overview -------------------------------------------------------------------------------------

    async def overview(self) -> dict[str, Any]:
        minute, hour, now = self.activity.window(MINUTE), self.activity.window(HOUR), self.activity.current()
        return {
            "sources": [self._source_row(s, minute, hour) for s in self.hub.sources],
            "destinations": [self._destination_row(r, minute, hour) for r in self.hub.runners],
            "consumer_lag": [{"source": key[1], "partition": key[2], "messages": int(value)}
                             for key, value in sorted(now.items())
                             if key[0] == "hub_consumer_lag_messages" and len(key) == 3],
            "dead_letter_reasons": dict(sorted(
                ((reason, int(n)) for reason, n in _by_label(now, "hub_events_rejected_total").items() if n),
                key=lambda kv: -kv[1])),
            "identity": await self._identity_health(),
            "readiness": await self._readiness(),
            "failed_sources": list(self.hub.failed_sources),
        }

    def _source_row(self, source: Any, minute: Snapshot, hour: Snapshot) -> dict[str, Any]:
        source_id = source.config.id

        def counts(window: Snapshot) -> dict[str, int]:
            settled = {outcome: int(window.get((SETTLED, source_id, outcome), 0))
                       for outcome in ("delivered", "rejected", "retry")}
            return {"in": int(window.get(("hub_events_in_total", source_id), 0)), "accepted": settled["delivered"],
                    "rejected": settled["rejected"], "retry": settled["retry"]}

        return {"id": source_id, "type": source.config.type, "routes": self.routes_by_source.get(source_id, []),
                "minute": counts(minute), "hour": counts(hour)}

    def _destination_row(self, runner: Any, minute: Snapshot, hour: Snapshot) -> dict[str, Any]:
        name = runner.name

        def counts(window: Snapshot) -> dict[str, Any]:
            lag_count = window.get(("hub_delivery_lag_seconds_count", name), 0)
            lag_sum = window.get(("hub_delivery_lag_seconds_sum", name), 0)
            return {
                "delivered": int(window.get(("hub_events_out_total", name), 0)),
                "retried": int(window.get(("hub_send_retries_total", name), 0)),
                "throttled": int(window.get(("hub_send_throttles_total", name), 0)),
                "gave_up": int(window.get(("hub_send_giveups_total", name), 0)),
                "lag_avg_secs": round(lag_sum / lag_count, 3) if lag_count else None,
            }

        return {"id": name, "type": runner.destination.config.type, "minute": counts(minute), "hour": counts(hour)}

    async def _identity_health(self) -> dict[str, Any]:
        identity = self.config.identity
        if not identity.enabled:
            return {"store": "off", "healthy": True, "detail": "identity stitching is off"}
        stage = next((s for s in self.hub.pipeline.stages if hasattr(s, "store")), None)
        kind = identity.store.type
        if stage is None:
            return {"store": kind, "healthy": False, "detail": "no identity stage"}
        try:  # one real round trip: a Redis that stopped answering shows here before events pile up
            await asyncio.wait_for(stage.store.load(["hub:console:probe"]), IDENTITY_PROBE_SECS)
        except Exception as err:  # noqa: BLE001 - any failure is what the page must show
            return {"store": kind, "healthy": False, "detail": f"{type(err).__name__}: {err}"[:200]}
        return {"store": kind, "healthy": True, "detail": "answering"}

    async def _readiness(self) -> list[dict[str, Any]]:
        store = self.hub.readiness.store
        try:
            reports = [await store.report(key) for key in await store.keys()]
        except Exception as err:  # noqa: BLE001 - counters unavailable: say so, the rest of the page still works
            return [{"error": f"{type(err).__name__}: {err}"[:200]}]
        return [{
            "key": r.key, "interactions": r.interactions, "users": r.users, "users_with_two": r.users_with_two,
            "items": r.items, "event_types": r.event_types, "ready": r.ready, "missing": r.missing(),
            "interactions_pct": min(100, round(100 * r.interactions / MIN_INTERACTIONS)),
            "users_with_two_pct": min(100, round(100 * r.users_with_two / MIN_USERS_WITH_TWO)),
            "min_interactions": MIN_INTERACTIONS, "min_users_with_two": MIN_USERS_WITH_TWO,
        } for r in reports]

    # -- dead letter ----------------------------------------------------------------------------------

    @property
    def dead_letter_path(self) -> Path | None:
        path = getattr(self.config.dead_letter, "path", None)
        return Path(path) if path else None

    def _numbered(self) -> Iterator[tuple[int, dict[str, Any]]]:
        path = self.dead_letter_path
        if path is None or not path.exists():
            return iter(())
        return enumerate(read_dead_letter(path))

    def dead_letter(self, query: DeadLetterQuery, limit: int) -> dict[str, Any]:
        """The newest `limit` matching records (redacted), with counts of everything the file holds."""
        newest: deque[tuple[int, dict[str, Any]]] = deque(maxlen=limit)
        reasons: Counter[str] = Counter()
        total = matched = 0
        for index, record in self._numbered():
            total += 1
            reasons[record.get("reason", "?")] += 1
            if query.matches(record):
                matched += 1
                newest.append((index, record))
        return {
            "path": str(self.dead_letter_path) if self.dead_letter_path else None,
            "total": total, "matched": matched, "reasons": dict(reasons.most_common()),
            "records": [self._summary(index, record) for index, record in reversed(newest)],
        }

    def dead_letter_record(self, index: int) -> dict[str, Any] | None:
        record = next((r for i, r in itertools.islice(self._numbered(), index, index + 1) if i == index), None)
        return None if record is None else {"index": index, **self.redact(record)}

    def _summary(self, index: int, record: dict[str, Any]) -> dict[str, Any]:
        source = record.get("source") or {}
        return {"index": index, "time": record.get("time"), "reason": record.get("reason"),
                "message": record.get("message"), "source": source.get("source_id"),
                "destination": record.get("destination"), "attempts": record.get("attempts", 0)}

    async def replay(self, query: DeadLetterQuery, indices: set[int] | None = None) -> dict[str, int]:
        """Replays matching (or the chosen) records as `hub replay` does; one replay at a time."""
        if self._replay_lock.locked():
            raise ReplayBusy("a replay is already running")
        async with self._replay_lock:
            chosen = [record for index, record in self._numbered()
                      if (index in indices if indices is not None else query.matches(record))]
            progress = self.replay_progress
            progress.update(running=True, done=0, total=len(chosen), last=None)

            def advance(n: int) -> None:
                progress["done"] += n

            try:
                summary = await replay(self.hub, chosen, ReplayFilter(), progress=advance)
            finally:
                progress["running"] = False
            result = {"replayed": summary.selected, "delivered": summary.outcomes.get("delivered", 0),
                      "rejected": summary.outcomes.get("rejected", 0), "retry": summary.outcomes.get("retry", 0),
                      "skipped": summary.outcomes.get("skipped", 0)}
            progress["last"] = result
            return result

    # -- jobs -----------------------------------------------------------------------------------------

    def jobs(self, runs_per_job: int = 5) -> dict[str, Any]:
        """Configured jobs with their next scheduled time and their recent runs (from Redis, if reachable)."""
        from workers.schedules import next_slot

        now = datetime.now(timezone.utc)
        rows, error = [], None
        runs = self._runs()
        for job in self.config.jobs:
            recent: list[dict[str, Any]] = []
            if runs is not None and error is None:
                try:
                    recent = [_run_row(runs.report(run_id)) for run_id in runs.recent(job.name, runs_per_job)]
                except Exception as err:  # noqa: BLE001 - Redis down: the job list is still useful
                    error = f"run history unavailable: {type(err).__name__}"
            rows.append({"name": job.name, "recipe": getattr(job.recipe, "value", job.recipe),  # "train" is a str
                         "schedule": job.schedule or "manual",
                         "next_run": next_slot(job.schedule, now).isoformat() if job.schedule else None,
                         "destinations": [d.id for d in getattr(job, "destinations", ())], "runs": recent})
        if runs is None and self.config.jobs:
            error = "workers.redis_url is not set: run history lives in Redis"
        return {"jobs": rows, "error": error}

    def lifecycle(self, limit: int = 100) -> dict[str, Any]:
        """The newest lifecycle events (import, version trained, gate, campaign, batch job, export), newest first."""
        from workers.notifications import recent_events

        notifications = self.config.notifications
        if not notifications.redis_url:
            return {"events": [], "error": "no Redis for the lifecycle journal: set redis.url or workers.redis_url"}
        try:
            events = recent_events(notifications, limit)
        except Exception as err:  # noqa: BLE001 - Redis down: the rest of the page is still useful
            return {"events": [], "error": f"lifecycle events unavailable: {type(err).__name__}"}
        return {"events": [_lifecycle_row(self.redact(event)) for event in events], "error": None}

    def _runs(self) -> Any:
        if not self.config.workers.redis_url:
            return None
        from workers import context
        from workers.steps import runs

        context.set_config(self.config)
        return runs()

    def trigger(self, name: str) -> str:
        """Queues a run of job `name` for the Celery workers, as `hub jobs run` does; returns its run id."""
        from workers.app import app, configure
        from workers.schedules import manual_run_id, start_task_name

        job = next((j for j in self.config.jobs if j.name == name), None)
        if job is None:
            raise KeyError(name)
        configure(self.config)
        run_id = manual_run_id(job)
        app.send_task(start_task_name(job), (name, run_id))
        return run_id

    # -- config ---------------------------------------------------------------------------------------

    def effective_config(self) -> dict[str, Any]:
        """The running config with every secret redacted, and `hub check`'s verdict on the file as it is now."""
        problems: list[str] = []
        if self.config_path:
            from personalize_hub.config import load_config
            from hub.errors import ConfigError

            try:
                load_config(self.config_path)
            except ConfigError as err:
                problems = list(getattr(err, "problems", None) or [str(err)])
        return {"path": self.config_path, "config": self.redact(self.config.model_dump(mode="json")),
                "problems": problems}


class ReplayBusy(Exception):
    """Another replay is running in this process."""


def _run_row(report: Any) -> dict[str, Any]:
    fields = report.fields
    return {
        "run_id": report.run_id, "state": report.state.value, "error": fields.get("error"),
        "users_in": report.users_in, "created_at": _iso(fields.get("created_at")),
        # A retraining run: what it decided (campaign_updated, gate_failed, trained) and why.
        "decision": fields.get("decision"), "reason": fields.get("reason"),
        "destinations": {name: {"sent": c.sent, "unchanged": c.unchanged, "failed": c.failed_total,
                                "unknown": c.unknown + c.sending, "reasons": c.failed}
                         for name, c in sorted(report.destinations.items())},
    }


def _lifecycle_row(event: dict[str, Any]) -> dict[str, Any]:
    kind = str(event.pop("event", ""))
    return {"time": _iso(event.pop("time", None)), "event": kind, "source": event.pop("source", None),
            "run_id": event.pop("run_id", None), "failed": kind.endswith(".failed"),
            "details": {key: value for key, value in event.items() if value not in (None, "", [], {})}}


def _iso(epoch: str | float | None) -> str | None:
    return datetime.fromtimestamp(float(epoch), timezone.utc).isoformat(timespec="seconds") if epoch else None
