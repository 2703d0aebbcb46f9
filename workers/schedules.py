"""Jobs' cron schedules as a Celery beat schedule, and the deterministic run ids of schedule slots."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from collections.abc import Iterator
from typing import Any

from workers.config import BatchJobConfig, parse_cron

# How far back a slot is looked for: a cron naming no day in five years (31 February) is reported.
_DAYS_SEARCHED = 366 * 5


def start_task_name(job: BatchJobConfig) -> str:
    """The task that starts a run of this job (beat sends it with the job name only)."""
    if job.recipe == "train":
        return "training.start"
    return "segments.start" if job.recipe.is_segment else "batch_inference.start"


def beat_schedule(jobs: list[BatchJobConfig]) -> dict[str, dict[str, Any]]:
    """Celery beat entries, one per scheduled job."""
    return {
        f"job:{job.name}": {"task": start_task_name(job), "schedule": parse_cron(job.schedule), "args": (job.name,)}
        for job in jobs
        if job.schedule
    }


def _slots(schedule: str, start: datetime, step_days: int) -> Iterator[datetime]:
    """The cron expression's times, day by day from `start`'s day in the direction of `step_days`."""
    cron = parse_cron(schedule)
    times = sorted(((h, m) for h in cron.hour for m in cron.minute), reverse=step_days < 0)
    for n in range(_DAYS_SEARCHED):
        day = (start + timedelta(days=n * step_days)).date()
        if (day.month in cron.month_of_year and day.day in cron.day_of_month
                and day.isoweekday() % 7 in cron.day_of_week):  # crontab: 0 = Sunday
            for hour, minute in times:
                yield datetime(day.year, day.month, day.day, hour, minute, tzinfo=timezone.utc)
    raise ValueError(f"schedule {schedule!r} named no time in {_DAYS_SEARCHED} days")


def previous_slot(schedule: str, now: datetime) -> datetime:
    """The latest time at or before `now` (UTC, whole minutes) that the cron expression names.

    A beat-sent task carries no time; a task that is redelivered later still lands in the same slot,
    so the run id it derives (and the Personalize job name) is the same and nothing is duplicated.
    """
    now = now.astimezone(timezone.utc).replace(second=0, microsecond=0)
    return next(slot for slot in _slots(schedule, now, -1) if slot <= now)


def next_slot(schedule: str, now: datetime) -> datetime:
    """The first time after `now` that the cron expression names (when beat starts the next run)."""
    now = now.astimezone(timezone.utc)
    return next(slot for slot in _slots(schedule, now, 1) if slot > now)


def scheduled_run_id(job: BatchJobConfig, now: datetime | None = None) -> str:
    """`<job>-<YYYYmmddTHHMM>` of the slot a scheduled run belongs to."""
    assert job.schedule is not None
    slot = previous_slot(job.schedule, now or datetime.now(timezone.utc))
    return f"{job.name}-{slot:%Y%m%dT%H%M}"


def manual_run_id(job: BatchJobConfig, now: datetime | None = None) -> str:
    """`<job>-<YYYYmmddTHHMMSS>` for `hub jobs run` (seconds: never equal to a slot's id)."""
    return f"{job.name}-{(now or datetime.now(timezone.utc)):%Y%m%dT%H%M%S}"
