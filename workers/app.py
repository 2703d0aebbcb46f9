"""The Celery app: Redis broker, JSON only, late acks, redelivery after a worker dies, beat from the jobs' cron.

Workers and beat read the hub config from $HUB_CONFIG:
    HUB_CONFIG=hub.yaml celery -A workers.app worker      HUB_CONFIG=hub.yaml celery -A workers.app beat
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

from hub import telemetry
from hub.errors import ConfigError
from workers import context
from workers.schedules import beat_schedule

TASK_MODULES = ["workers.batch_inference", "workers.segments", "workers.exports", "workers.training"]

app = Celery("personalize_hub", include=TASK_MODULES)
# Celery sets up its own logging: the same folding of repeated lines as the hub's.
signals.after_setup_logger.connect(telemetry.fold_repeats, weak=False)
signals.after_setup_task_logger.connect(telemetry.fold_repeats, weak=False)


def configure(config: Any) -> None:
    """Point the app at the config's Redis and set the delivery guarantees (docs/reference/platform.md#redis-and-celery, Redis and Celery)."""
    workers = config.workers
    if not workers.redis_url:
        raise ConfigError(["workers.redis_url: jobs need Redis (broker, ledger, reports)"])
    context.set_config(config)
    app.conf.update(
        broker_url=workers.redis_url,
        broker_connection_retry_on_startup=True,
        # Messages are ids and URIs: JSON only, never pickle.
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,  # outcomes live in the run's record, not a result backend
        # Acknowledge after the task ran, and requeue it if the worker process dies mid-task.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # with late acks a prefetched message waits behind a long task
        # kombu's Redis transport restores unacknowledged messages only after the visibility timeout and
        # by default sweeps every ~100 s; these make the sweep run every second
        # (docs/reference/platform.md#redis-and-celery).
        broker_transport_options={
            "visibility_timeout": workers.visibility_timeout_secs,
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
        },
        beat_schedule=beat_schedule(config.jobs),
        timezone="UTC",
        enable_utc=True,
    )


@signals.worker_init.connect
@signals.beat_init.connect
def _require_config(**_: Any) -> None:
    broker_url = app.conf.broker_url or ""
    if not broker_url.startswith(("redis://", "rediss://", "unix://")):
        scheme = broker_url.partition("://")[0] if "://" in broker_url else "none"  # the URL may hold a password
        raise ConfigError([f"{context.CONFIG_ENV} must name a hub config with workers.redis_url (got a broker "
                           f"of scheme {scheme!r})"])


if os.environ.get(context.CONFIG_ENV):
    configure(context.hub_config())
