"""Jobs' cron schedules as a Celery beat schedule, and the deterministic run ids of schedule slots."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from personalize_hub.jobs import JobConfig, parse_cron

# How far back a slot is looked for: a cron naming no day in five years (31 February) is reported.
_DAYS_SEARCHED = 366 * 5


def start_task_name(job: JobConfig) -> str:
    """The task that starts a run of this job (beat sends it with the job name only)."""
    if job.recipe == "train":
        return "training.start"
    return "segments.start" if job.recipe.is_segment else "batch_inference.start"


def beat_schedule(jobs: list[JobConfig]) -> dict[str, dict[str, Any]]:
    """Celery beat entries, one per scheduled job."""
    return {
        f"job:{job.name}": {"task": start_task_name(job), "schedule": parse_cron(job.schedule), "args": (job.name,)}
        for job in jobs
        if job.schedule
    }


def previous_slot(schedule: str, now: datetime) -> datetime:
    """The latest time at or before `now` (UTC, whole minutes) that the cron expression names.

    A beat-sent task carries no time; a task that is redelivered later still lands in the same slot,
    so the run id it derives (and the Personalize job name) is the same and nothing is duplicated.
    """
    cron = parse_cron(schedule)
    now = now.astimezone(timezone.utc).replace(second=0, microsecond=0)
    for days_back in range(_DAYS_SEARCHED):
        day = (now - timedelta(days=days_back)).date()
        if (day.month not in cron.month_of_year or day.day not in cron.day_of_month
                or day.isoweekday() % 7 not in cron.day_of_week):  # crontab: 0 = Sunday
            continue
        for hour in sorted(cron.hour, reverse=True):
            for minute in sorted(cron.minute, reverse=True):
                slot = datetime(day.year, day.month, day.day, hour, minute, tzinfo=timezone.utc)
                if slot <= now:
                    return slot
    raise ValueError(f"schedule {schedule!r} named no time in the last {_DAYS_SEARCHED} days")


def scheduled_run_id(job: JobConfig, now: datetime | None = None) -> str:
    """`<job>-<YYYYmmddTHHMM>` of the slot a scheduled run belongs to."""
    assert job.schedule is not None
    slot = previous_slot(job.schedule, now or datetime.now(timezone.utc))
    return f"{job.name}-{slot:%Y%m%dT%H%M}"


def manual_run_id(job: JobConfig, now: datetime | None = None) -> str:
    """`<job>-<YYYYmmddTHHMMSS>` for `hub jobs run` (seconds: never equal to a slot's id)."""
    return f"{job.name}-{(now or datetime.now(timezone.utc)):%Y%m%dT%H%M%S}"
