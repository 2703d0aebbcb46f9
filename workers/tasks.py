"""The Celery tasks of a run's chain (start → prepare → submit → wait → exports.push), made per job kind.

Tasks take ids only (job name, run id, shard, byte offset), are acknowledged late, and are safe to run
twice: every step checks the run's record before acting, and the next step is enqueued at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis
from celery import Task
from celery.exceptions import Retry

from hub.errors import HubError, RetryableError
from workers import context, personalize, steps
from workers.app import app
from workers.schedules import manual_run_id, scheduled_run_id

MAX_TRANSIENT_RETRIES = 8  # throttling, 5xx, a Redis or S3 blip: backoff 1, 2, 4 … 60 s


class RunTask(Task):
    """Base of the run tasks: their failures are the run's failures."""

    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    # The retry limits are the callers' own (MAX_TRANSIENT_RETRIES in guarded, none while polling a job):
    # Celery's retry(max_retries=None) means "the task's max_retries", which defaults to 3, not "no limit".
    max_retries = None


def is_transient(err: Exception) -> bool:
    return personalize.transient(err) or isinstance(err, (redis.ConnectionError, redis.TimeoutError, RetryableError))


@contextlib.contextmanager
def guarded(task: Task, run_id: str) -> Iterator[None]:
    """Retry a transient failure with backoff; record anything else as the run's failure."""
    try:
        yield
    except Retry:
        raise
    except steps.RunOver:
        return  # a late duplicate of a finished run: nothing left to do
    except RetryableError as err:  # a hub component says "later" (e.g. the identity store's Redis is away)
        if task.request.retries < MAX_TRANSIENT_RETRIES:
            raise task.retry(exc=err, countdown=min(60, 2 ** task.request.retries)) from err
        steps.runs().fail(run_id, str(err))
    except (steps.RunFailed, HubError) as err:  # a reason to show (bad input, catalog, config), not a bug
        steps.runs().fail(run_id, str(err))
    except Exception as err:
        if is_transient(err) and task.request.retries < MAX_TRANSIENT_RETRIES:
            raise task.retry(exc=err, countdown=min(60, 2 ** task.request.retries)) from err
        steps.runs().fail(run_id, f"{type(err).__name__}: {err}")
        raise


def run_tasks(module: str) -> tuple[Task, Task, Task, Task]:
    """start, prepare, submit and wait, named "<module>.<verb>"."""

    @app.task(bind=True, base=RunTask, name=f"{module}.start")
    def start(self: Task, job_name: str, run_id: str | None = None) -> str:
        """Start a run of a job: beat sends the job name only (the run id comes from the schedule slot)."""
        job = context.job_config(job_name)
        run_id = run_id or (scheduled_run_id(job) if job.schedule else manual_run_id(job))
        with guarded(self, run_id):
            steps.start(job_name, run_id)
            steps.job_of(run_id)  # RunOver when this run id finished already
            app.send_task(f"{module}.prepare", (run_id,))
        return run_id

    @app.task(bind=True, base=RunTask, name=f"{module}.prepare")
    def prepare(self: Task, run_id: str) -> None:
        """Write the batch input from the job's users (or items) list."""
        with guarded(self, run_id):
            steps.prepare(run_id)
            app.send_task(f"{module}.submit", (run_id,))

    @app.task(bind=True, base=RunTask, name=f"{module}.submit")
    def submit(self: Task, run_id: str) -> None:
        """Create the batch job (or find the one this run already created)."""
        with guarded(self, run_id):
            steps.submit(run_id)
            app.send_task(f"{module}.wait", (run_id,))

    @app.task(bind=True, base=RunTask, name=f"{module}.wait")
    def wait(self: Task, run_id: str) -> None:
        """Poll the batch job with a countdown (no worker sleeps); start the export when it is done."""
        with guarded(self, run_id):
            pending = steps.poll(run_id)
            if pending is not None:
                raise self.retry(countdown=pending.secs, max_retries=None)
            for shard in range(int(steps.runs().get(run_id)["shards"])):
                app.send_task("exports.push", (run_id, shard))

    return start, prepare, submit, wait
