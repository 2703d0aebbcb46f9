"""`hub jobs list | run NAME | status RUN | resolve RUN`: batch jobs from the command line, reports printed with rich."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import click
import redis
from rich.console import Console
from rich.table import Table

from personalize_hub.config import load_config_or_exit
from workers.runs import Report, RunState

# Exit codes: 0 every recipient sent or unchanged; 1 the run failed; 3 done, but some recipients failed
# or have an unknown outcome; 2 (as every hub command) the config is invalid.
EXIT_CODES = {RunState.SUCCEEDED: 0, RunState.FAILED: 1, RunState.PARTIAL: 3}


@contextlib.contextmanager
def _redis_reachable() -> Iterator[None]:
    """Redis down is a message and exit 1, not a traceback."""
    from kombu.exceptions import OperationalError

    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, OperationalError) as err:
        click.echo(f"cannot reach Redis at workers.redis_url ({err}); run state lives there", err=True)
        sys.exit(1)


def _setup(config_path: str) -> Any:
    from workers.app import configure

    config = load_config_or_exit(config_path)
    configure(config)
    return config


@click.group()
def jobs() -> None:
    """Scheduled jobs: batch inference and segments pushed to marketing tools, and retraining with a gate."""


@jobs.command("list")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Hub YAML file.")
def list_jobs(config_path: str) -> None:
    """The configured jobs and each one's latest run."""
    config = _setup(config_path)
    from workers.steps import runs

    table = Table("job", "recipe", "schedule (UTC)", "destinations", "latest run", "state")
    for job in config.jobs:
        latest, state = "-", "-"
        try:
            recent = runs().recent(job.name)
            if recent:
                latest, state = recent[0], runs().get(recent[0]).get("state", "expired")
        except Exception as err:  # noqa: BLE001 - the list is still useful without Redis
            state = f"unknown ({type(err).__name__})"
        table.add_row(job.name, getattr(job.recipe, "value", job.recipe), job.schedule or "manual",
                      ", ".join(d.id for d in getattr(job, "destinations", ())) or "-", latest, state)
    Console().print(table)


@jobs.command("run")
@click.argument("name")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Hub YAML file.")
@click.option("--eager", is_flag=True, help="Run every step in this process instead of on Celery workers.")
@click.option("--run-id", default=None, help="Resume this run (default: a new run named after the time).")
@click.option("--timeout", "timeout_secs", default=None, type=float, help="Give up waiting after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def run_job(name: str, config_path: str, eager: bool, run_id: str | None, timeout_secs: float | None,
            as_json: bool) -> None:
    """Run job NAME to completion; exit 0 if every recipient was sent or unchanged, 1 failed, 3 partial."""
    _setup(config_path)
    from workers import context
    from workers.schedules import manual_run_id

    try:
        job = context.job_config(name)
    except context.UnknownJob as err:
        click.echo(str(err), err=True)
        sys.exit(2)
    run_id = run_id or manual_run_id(job)
    err_console = Console(stderr=True)
    with _redis_reachable():
        _run(name, run_id, job, eager, timeout_secs, as_json, err_console)


def _run(name: str, run_id: str, job: Any, eager: bool, timeout_secs: float | None, as_json: bool,
         err_console: Console) -> None:
    from workers import steps
    from workers.schedules import start_task_name

    if eager:
        if job.recipe == "train":
            from workers.training import run_eagerly
        else:
            from workers.driver import run_eagerly

        run_eagerly(name, run_id, on_state=lambda s: err_console.print(f"[dim]{run_id}: {s}[/dim]"))
    else:
        from workers.app import app

        app.send_task(start_task_name(job), (name, run_id))
        err_console.print(f"[dim]{run_id}: queued for the workers[/dim]")
        _wait_for(run_id, timeout_secs, err_console)
    report = steps.runs().report(run_id)
    _print(report, as_json)
    sys.exit(EXIT_CODES.get(report.state, 1))


def _wait_for(run_id: str, timeout_secs: float | None, console: Console) -> None:
    from workers.steps import runs

    deadline = time.monotonic() + timeout_secs if timeout_secs else None
    last = None
    while True:
        state = runs().get(run_id).get("state")
        if state != last and state is not None:
            console.print(f"[dim]{run_id}: {state}[/dim]")
            last = state
        if state is not None and RunState(state).final:
            return
        if deadline is not None and time.monotonic() > deadline:
            console.print(f"{run_id}: still {state or 'not started'} after {timeout_secs:.0f}s; "
                          f"`hub jobs status {run_id}` shows it later")
            sys.exit(1)
        time.sleep(1.0)


@jobs.command("status")
@click.argument("run_id")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Hub YAML file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def status(run_id: str, config_path: str, as_json: bool) -> None:
    """The report of run RUN_ID: users in, lines with errors, sent, unchanged, failed with reasons, unknown;
    for a training run, the decision and the versions with their metrics."""
    _setup(config_path)
    from workers.steps import runs

    with _redis_reachable():
        report = runs().report(run_id)
    if not report.fields:
        click.echo(f"no run {run_id!r} (runs are kept workers.state_ttl_days)", err=True)
        sys.exit(1)
    _print(report, as_json)


@jobs.command("resolve")
@click.argument("run_id")
@click.option("--as", "outcome", required=True, type=click.Choice(["sent", "unsent"]),
              help="sent: they arrived (recorded as the last sync); unsent: they did not (the next run sends them).")
@click.option("--destination", "only", multiple=True, help="Only these destination ids (default: all of the job's).")
@click.option("--recipient", "recipients", multiple=True, help="Only these recipients (default: every one in doubt).")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Hub YAML file.")
def resolve(run_id: str, outcome: str, only: tuple[str, ...], recipients: tuple[str, ...], config_path: str) -> None:
    """Decide the recipients of RUN_ID whose send may or may not have arrived (`unknown`): the hub never
    resends them by itself. Check the destination (the mail log, the provider's console), then say."""
    config = _setup(config_path)
    from workers import context
    from workers.steps import runs

    with _redis_reachable():
        record = runs().get(run_id)
        if not record:
            click.echo(f"no run {run_id!r} (runs are kept workers.state_ttl_days)", err=True)
            sys.exit(1)
        if not RunState(record["state"]).final:
            silent = time.time() - runs().last_beat(record)
            if silent <= config.workers.run_lease_secs:
                click.echo(f"run {run_id} is {record['state']} (alive {silent:.0f}s ago): its sends may still settle; "
                           "resolve it once it is final", err=True)
                sys.exit(1)
            runs().fail(run_id, f"abandoned: no heartbeat for {silent:.0f}s while {record['state']}; resolved by hand")
        job = context.job_config(record["job"])
        decided = asyncio.run(_resolve(run_id, job, only or [d.id for d in job.destinations], set(recipients),
                                       arrived=outcome == "sent"))
        state = runs().reconsider(run_id)
    for destination, count in decided.items():
        click.echo(f"{destination}: {count} recipients resolved as {outcome}")
    click.echo(f"{run_id}: {state.value}")


async def _resolve(run_id: str, job: Any, destinations: list[str], recipients: set[str], *,
                   arrived: bool) -> dict[str, int]:
    from workers import context
    from workers.ledger import Ledger

    config = context.hub_config().workers
    client = context.async_redis()
    try:
        ledger = Ledger(client, run_id, job.name, ttl_secs=config.state_ttl_days * 86_400,
                        sync_ttl_secs=config.sync_ttl_days * 86_400)
        decided = {}
        for destination in destinations:
            in_doubt = await ledger.in_doubt(destination)
            if recipients:
                in_doubt = {k: v for k, v in in_doubt.items() if k in recipients}
            await ledger.resolve(destination, in_doubt, arrived=arrived)
            decided[destination] = len(in_doubt)
        return decided
    finally:
        await client.aclose()


def _print(report: Report, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
        return
    console = Console()
    fields = report.fields
    colour = {"succeeded": "green", "partial": "yellow", "failed": "red"}.get(report.state.value, "cyan")
    console.print(f"[bold]{report.run_id}[/bold]  job {fields.get('job', '?')}  [{colour}]{report.state.value}[/]")
    if fields.get("error"):
        console.print(f"[red]error:[/red] {fields['error']}")
    if fields.get("kind") == "train":
        _print_training(fields, console)
        return
    summary = Table(show_header=False, box=None)
    summary.add_row("batch job", fields.get("batch_job_arn", "-"))
    if fields.get("solution_version_arn"):
        summary.add_row("solution version", f"{fields['solution_version_arn']}  ({fields.get('solution_version_source', '')})")
    summary.add_row("users in", str(report.users_in))
    if int(fields.get("input_rejected", 0)):
        summary.add_row("input lines rejected", f"{fields['input_rejected']}  {fields.get('input_problems', '')}")
    summary.add_row("output lines", str(report.lines_out))
    errors = sum(report.lines_with_errors.values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(report.lines_with_errors.items()))
    summary.add_row("lines with errors", f"{errors}" + (f"  ({detail})" if detail else ""))
    if report.items_without_metadata:
        summary.add_row("items without metadata (dropped)", str(report.items_without_metadata))
    console.print(summary)
    for sample in report.error_samples:
        console.print(f"  [dim]{sample}[/dim]")
    table = Table("destination", "sent", "unchanged", "failed", "unknown", "in flight", "failure reasons")
    for name, counts in sorted(report.destinations.items()):
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(counts.failed.items()))
        table.add_row(name, str(counts.sent), str(counts.unchanged), str(counts.failed_total), str(counts.unknown),
                      str(counts.sending), reasons)
    console.print(table)


def _print_training(fields: dict[str, str], console: Console) -> None:
    """A retraining run: the decision and why, then each version with its metrics."""
    if fields.get("decision"):
        console.print(f"decision: {fields['decision']}: {fields.get('reason', '')}", markup=False)
    versions = [("new", fields.get("solution_version_arn"), fields.get("metrics")),
                ("serving", fields.get("serving_version_arn"), fields.get("serving_metrics"))]
    versions = [(role, arn, json.loads(metrics) if metrics else {}) for role, arn, metrics in versions if arn]
    names = sorted({name for _, _, metrics in versions for name in metrics})
    table = Table("version", "solution version", *names)
    for role, arn, metrics in versions:
        table.add_row(role, arn, *(f"{metrics[n]:.4f}" if n in metrics else "-" for n in names))
    console.print(table)
