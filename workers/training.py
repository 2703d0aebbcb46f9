"""Retraining runs: a new solution version, its metrics against the serving one, the campaign moved if the gate passes.

Chain: `training.start` → `.submit` (CreateSolutionVersion, FULL or UPDATE) → `.wait` (DescribeSolutionVersion,
retried with a countdown; CREATE FAILED fails the run with Personalize's reason) → the decision, in the same
task: GetSolutionMetrics of the new version and of the version the campaign serves, the gate, and
UpdateCampaign only when it passes. The run's record says what was decided and why (`hub jobs status`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from celery import Task

from workers.config import GateConfig, TrainJobConfig
from workers import context, personalize, steps
from workers.app import app
from workers.notifications import notify
from workers.runs import RunState
from workers.schedules import manual_run_id, scheduled_run_id
from workers.tasks import MAX_TRANSIENT_RETRIES, RunTask, guarded, is_transient

TRAINED, CAMPAIGN_UPDATED, GATE_FAILED = "trained", "campaign_updated", "gate_failed"


def gate_decision(gate: GateConfig | None, new: dict[str, float], serving: dict[str, float] | None) -> tuple[bool, str]:
    """(passes, why): the new version may replace the serving one when its metric dropped at most `max_drop`."""
    if gate is None:
        return True, "no gate configured"
    metric = gate.metric
    if metric not in new:
        return False, f"{metric} is not among the new version's metrics ({', '.join(sorted(new)) or 'none'})"
    if not serving or metric not in serving:
        return True, f"the serving version reports no {metric} to compare with"
    floor = serving[metric] * (1 - gate.max_drop)
    verdict = ">=" if new[metric] >= floor else "<"
    why = (f"{metric} {new[metric]:.4f} {verdict} {floor:.4f} (serving {serving[metric]:.4f}, "
           f"max drop {gate.max_drop:.0%})")
    return new[metric] >= floor, why


def start(job_name: str, run_id: str) -> bool:
    return steps.runs().create(run_id, job_name, "train")


def _job(run_id: str) -> tuple[TrainJobConfig, dict[str, str]]:
    job, run = steps.job_of(run_id)
    if not isinstance(job, TrainJobConfig):
        raise steps.RunFailed(f"job {job.name} is not a training job")
    return job, run


def submit(run_id: str) -> None:
    """CreateSolutionVersion, named after the run; a redelivered task finds the ARN in the run's record."""
    job, run = _job(run_id)
    if run.get("solution_version_arn"):
        return
    client = context.sync_client("personalize")
    with steps.refusals_fail_the_run(f"training {job.solution_arn} ({job.training_mode})"):
        arn = client.create_solution_version(solutionArn=job.solution_arn, trainingMode=job.training_mode,
                                             name=personalize.job_name_for(run_id))["solutionVersionArn"]
    steps.runs().set_state(run_id, RunState.TRAINING, solution_version_arn=arn, training_mode=job.training_mode,
                           submitted_at=time.time())


def poll(run_id: str) -> steps.Wait | None:
    """None once the version is ACTIVE; Wait while it trains; RunFailed with Personalize's reason if it failed."""
    job, run = _job(run_id)
    workers = context.hub_config().workers
    client = context.sync_client("personalize")
    arn = run["solution_version_arn"]
    with steps.refusals_fail_the_run(f"polling solution version {arn}"):
        version = client.describe_solution_version(solutionVersionArn=arn)["solutionVersion"]
    status = version.get("status", "")
    if status == personalize.CREATE_FAILED:
        reason = version.get("failureReason") or "no reason given"
        _notify(job, run_id, "solution_version.failed", solution_version_arn=arn, reason=reason)
        raise steps.RunFailed(f"solution version {arn} CREATE FAILED: {reason}")
    if status != personalize.ACTIVE:
        if time.time() - float(run.get("submitted_at", time.time())) > workers.max_wait_secs:
            raise steps.RunFailed(f"solution version {arn} still {status} after {workers.max_wait_secs:.0f}s")
        return steps.Wait(workers.poll_interval_secs)
    return None


def decide(run_id: str) -> RunState:
    """Metrics of both versions, the gate, and UpdateCampaign only if it passes; the run's final state."""
    job, run = _job(run_id)
    client = context.sync_client("personalize")
    arn = run["solution_version_arn"]
    with steps.refusals_fail_the_run(f"reading the metrics of {arn}"):
        metrics = client.get_solution_metrics(solutionVersionArn=arn).get("metrics") or {}
    runs = steps.runs()
    runs.update(run_id, metrics=orjson.dumps(metrics).decode())
    _notify(job, run_id, "solution_version.trained", solution_version_arn=arn, training_mode=job.training_mode,
            metrics=metrics)
    if job.campaign_arn is None:
        runs.set_state(run_id, RunState.SUCCEEDED, decision=TRAINED, reason="no campaign_arn: nothing to deploy",
                       finished_at=time.time())
        return RunState.SUCCEEDED
    with steps.refusals_fail_the_run(f"reading campaign {job.campaign_arn}"):
        serving = client.describe_campaign(campaignArn=job.campaign_arn)["campaign"]["solutionVersionArn"]
        serving_metrics = client.get_solution_metrics(solutionVersionArn=serving).get("metrics") or {}
    passed, why = gate_decision(job.gate, metrics, serving_metrics)
    runs.update(run_id, serving_version_arn=serving, serving_metrics=orjson.dumps(serving_metrics).decode())
    _notify(job, run_id, "gate.passed" if passed else "gate.failed", solution_version_arn=arn, metrics=metrics,
            serving_version_arn=serving, serving_metrics=serving_metrics, reason=why)
    if not passed:
        runs.set_state(run_id, RunState.PARTIAL, decision=GATE_FAILED, reason=f"gate failed: {why}; campaign "
                       f"{job.campaign_arn} still serves {serving}", finished_at=time.time())
        return RunState.PARTIAL
    with steps.refusals_fail_the_run(f"updating campaign {job.campaign_arn}"):
        client.update_campaign(campaignArn=job.campaign_arn, solutionVersionArn=arn)
    _notify(job, run_id, "campaign.updated", campaign_arn=job.campaign_arn, solution_version_arn=arn,
            previous_version_arn=serving)
    runs.set_state(run_id, RunState.SUCCEEDED, decision=CAMPAIGN_UPDATED,
                   reason=f"gate passed: {why}; campaign {job.campaign_arn} moved from {serving}",
                   finished_at=time.time())
    return RunState.SUCCEEDED


def _notify(job: TrainJobConfig, run_id: str, event: str, **data: Any) -> None:
    notify(context.hub_config().notifications, event, job.name, run_id, **data)


@app.task(bind=True, base=RunTask, name="training.start")
def start_task(self: Task, job_name: str, run_id: str | None = None) -> str:
    """Start a retraining run: beat sends the job name only (the run id comes from the schedule slot)."""
    job = context.job_config(job_name)
    run_id = run_id or (scheduled_run_id(job) if job.schedule else manual_run_id(job))
    with guarded(self, run_id):
        start(job_name, run_id)
        _job(run_id)  # RunOver when this run id finished already
        app.send_task("training.submit", (run_id,))
    return run_id


@app.task(bind=True, base=RunTask, name="training.submit")
def submit_task(self: Task, run_id: str) -> None:
    with guarded(self, run_id):
        submit(run_id)
        app.send_task("training.wait", (run_id,))


@app.task(bind=True, base=RunTask, name="training.wait")
def wait_task(self: Task, run_id: str) -> None:
    """Poll the version with a countdown (no worker sleeps); decide once it is ACTIVE."""
    with guarded(self, run_id):
        pending = poll(run_id)
        if pending is not None:
            raise self.retry(countdown=pending.secs, max_retries=None)
        decide(run_id)


def run_eagerly(job_name: str, run_id: str, *, sleep: Callable[[float], None] = time.sleep,
                on_state: Callable[[str], None] | None = None) -> RunState:
    """`hub jobs run NAME --eager` for a training job: the same steps in this process."""

    def step(fn: Callable[[str], Any]) -> Any:
        for attempt in range(MAX_TRANSIENT_RETRIES + 1):
            try:
                return fn(run_id)
            except Exception as err:
                if not is_transient(err) or attempt == MAX_TRANSIENT_RETRIES:
                    raise
                sleep(min(60, 2**attempt))
        raise AssertionError("unreachable")

    start(job_name, run_id)
    try:
        if on_state:
            on_state("training")
        step(submit)
        while (pending := step(poll)) is not None:
            sleep(pending.secs)
        step(decide)
    except steps.RunOver:
        pass
    except steps.RunFailed as err:
        steps.runs().fail(run_id, str(err))
    return RunState(steps.runs().get(run_id)["state"])
