"""Cron schedules: beat entries, the slot a run belongs to, and run ids."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from personalize_hub.config import parse_config
from workers.schedules import beat_schedule, manual_run_id, previous_slot, scheduled_run_id


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def jobs(*schedules: str | None, recipe: str = "user_recommendations"):
    return parse_config({
        "workers": {"redis_url": "redis://x", "work_uri": "file:///w"},
        "jobs": [{"name": f"job{i}", "schedule": s, "recipe": recipe, "input": "file:///u.jsonl",
                  "solution_version_arn": "arn:aws:personalize:us-east-1:0:solution/s/1",
                  "destinations": [{"type": "file", "path": "/o"}]} for i, s in enumerate(schedules)]}).jobs


@pytest.mark.parametrize(("cron", "now", "slot"), [
    ("0 6 * * 1", utc(2026, 1, 5, 6, 0, 30), utc(2026, 1, 5, 6, 0)),  # Monday 06:00, half a minute late
    ("0 6 * * 1", utc(2026, 1, 5, 5, 59), utc(2025, 12, 29, 6, 0)),  # a minute early: last week's slot
    ("0 6 * * 1", utc(2026, 1, 8, 12, 0), utc(2026, 1, 5, 6, 0)),  # Thursday: Monday's
    ("*/15 * * * *", utc(2026, 3, 1, 10, 44, 59), utc(2026, 3, 1, 10, 30)),
    ("30 2 1 * *", utc(2026, 3, 1, 2, 29), utc(2026, 2, 1, 2, 30)),
    ("0 0 * * 0", utc(2026, 1, 4, 0, 0), utc(2026, 1, 4, 0, 0)),  # 0 = Sunday
])
def test_previous_slot(cron, now, slot):
    assert previous_slot(cron, now) == slot


def test_a_redelivered_start_lands_in_the_same_run():
    (job,) = jobs("0 6 * * 1")
    first = scheduled_run_id(job, utc(2026, 1, 5, 6, 0, 1))
    assert first == "job0-20260105T0600"
    assert scheduled_run_id(job, utc(2026, 1, 5, 6, 40)) == first  # redelivered 40 minutes later
    assert manual_run_id(job, utc(2026, 1, 5, 6, 0, 1)) == "job0-20260105T060001" != first


def test_a_cron_that_named_no_time_for_years_is_reported():
    # 29 February that is a Monday: 2016, then 2044 (Celery's crontab ANDs day of month and weekday).
    with pytest.raises(ValueError, match="named no time"):
        previous_slot("0 0 29 2 1", utc(2026, 1, 1))


def test_beat_schedule_has_scheduled_jobs_only_with_their_start_task():
    assert list(beat_schedule(jobs("0 6 * * 1", None))) == ["job:job0"]  # job1 has no schedule
    (inference,) = beat_schedule(jobs("0 6 * * 1", None)).values()
    assert inference["task"] == "batch_inference.start" and inference["args"] == ("job0",)
    assert inference["schedule"].is_due(utc(2026, 1, 5, 5, 59))[1] > 0
    (segment,) = beat_schedule(jobs("*/5 * * * *", recipe="item_affinity")).values()
    assert segment["task"] == "segments.start"
