"""The `hub` command: run | check | connectors | import (and the commands other modules add)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys

import click

from personalize_hub.jobs_cli import jobs


def _load(path: str):
    from personalize_hub.config import load_config_or_exit  # late: `hub --help` does not load the catalogue

    return load_config_or_exit(path)


@contextlib.contextmanager
def _config_problems_exit():
    """A config problem found while assembling the hub (a mapping that does not fit the schemas) is reported
    like one found loading the file: every problem on stderr, exit status 2, no traceback."""
    from hub.errors import ConfigError

    try:
        yield
    except ConfigError as err:
        click.echo(err, err=True)
        sys.exit(2)


@click.group()
@click.version_option(package_name="personalize-hub")
def main() -> None:
    """personalize-hub: clickstream and catalog into Amazon Personalize, recommendations out to marketing."""


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Hub YAML file.")
@click.option("--host", default=None, help="Override http.host.")
@click.option("--port", default=None, type=int, help="Override http.port.")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING (default: $HUB_LOG_LEVEL or INFO).")
def run(config_path: str, host: str | None, port: int | None, log_level: str | None) -> None:
    """Serve the hub: webhooks, Kafka consumers, delivery, /metrics."""
    import uvicorn

    from hub.telemetry import setup_logging
    from personalize_hub.http_server import server_config
    from personalize_hub.ingest import build_app
    from personalize_hub.runtime import Hub

    setup_logging(log_level)
    config = _load(config_path)
    bound_host = host or config.http.host
    with _config_problems_exit():
        hub = Hub(config)
    app = build_app(hub, bound_host=bound_host, config_path=config_path)
    server = uvicorn.Server(server_config(app, config.http.limits, host=bound_host,
                                          port=port if port is not None else config.http.port,
                                          log_level=(log_level or "info").lower()))
    server.run()  # on the loop uvicorn picks (uvloop where installed), as local_personalize and the bench anchor


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Hub YAML file.")
@click.option("--host", default=None, help="Override http.host.")
@click.option("--port", default=None, type=int, help="Override http.port.")
def console(config_path: str, host: str | None, port: int | None) -> None:
    """Serve only the operator console (/console): for a batch-only setup, or beside a running hub."""
    import uvicorn

    from personalize_hub.http_server import server_config
    from personalize_hub.ingest import build_app
    from personalize_hub.runtime import Hub
    from hub.telemetry import setup_logging

    setup_logging()
    config = _load(config_path)
    bound_host = host or config.http.host
    with _config_problems_exit():
        hub = Hub(config)
    app = build_app(hub, bound_host=bound_host, config_path=config_path, take_input=False)
    click.echo(f"console: http://{bound_host}:{port if port is not None else config.http.port}/console/", err=True)
    uvicorn.Server(server_config(app, config.http.limits, host=bound_host,
                                 port=port if port is not None else config.http.port, log_level="warning")).run()


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Hub YAML file.")
def check(config_path: str) -> None:
    """Validate a config file and report every problem at once (exit 2 if any)."""
    from personalize_hub.runtime import personalize_encoding

    config = _load(config_path)
    with _config_problems_exit():
        personalize_encoding(config)
    click.echo(
        f"ok: {len(config.sources)} source(s), {len(config.destinations)} destination(s), "
        f"dead letter: {config.dead_letter.type}"
    )


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Hub YAML file.")
@click.option("--env-file", "env_file", required=True, type=click.Path(dir_okay=False),
              help="Where to write the ids and secrets (the hub, workers and beat read it as HUB_ENV_FILE).")
@click.option("--name", default="personalize-hub", show_default=True, help="Dataset group (and resource) name.")
def bootstrap(config_path: str, env_file: str, name: str) -> None:
    """Create or find the dataset group, schemas, datasets and event tracker; write their ids to --env-file."""
    import os
    from pathlib import Path

    import yaml

    from personalize_hub.bootstrap import bootstrap_env, read_env_file, write_env_file
    from personalize_hub.config import interpolate

    # Only `aws` and `schemas` are read: the ids the rest of the config needs do not exist yet.
    tree = interpolate(yaml.safe_load(Path(config_path).read_text()) or {}, missing=[])
    path = Path(env_file)
    previous = read_env_file(path) if path.exists() else {}
    try:
        values = bootstrap_env(tree, os.environ, name=name, previous=previous)
    except Exception as err:  # noqa: BLE001 - one line for the operator, exit non-zero for compose
        click.echo(f"bootstrap failed: {type(err).__name__}: {err}", err=True)
        sys.exit(1)
    write_env_file(path, values)
    # Ids on lines of their own, never wrapped: they are copied from here.
    click.echo(f"wrote {path} (owner-only; it also holds the webhook secrets):")
    for variable in sorted(values):
        if variable.startswith("PERSONALIZE_"):
            click.echo(f"{variable}={values[variable]}")


@main.command()
@click.argument("type_", metavar="[TYPE]", required=False)
def connectors(type_: str | None) -> None:
    """List built-in connectors, or print one connector's configuration fields."""
    from personalize_hub import registry

    if type_ is None:
        for name, cls in sorted({**registry.sources(), **registry.destinations()}.items()):
            click.echo(f"{name:24} {registry.kind_of(name):12} {(cls.__doc__ or '').strip().splitlines()[0]}")
        return
    try:
        info = registry.describe(type_)
    except KeyError:
        click.echo(f"unknown connector type {type_!r}; `hub connectors` lists them", err=True)
        sys.exit(2)
    click.echo(f"{info['type']} ({info['kind']}): {info['summary']}")
    for name, field in info["fields"].items():
        default = "required" if field["required"] else f"default {json.dumps(field['default'], default=str)}"
        click.echo(f"  {name:22} {default:28} {field['description']}")


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Hub YAML file.")
@click.option("--from", "from_path", type=click.Path(exists=True, dir_okay=False),
              help="Dead-letter JSON Lines file (default: the config's file dead letter).")
@click.option("--reason", "reasons", multiple=True, help="Only records with this reason code (repeatable).")
@click.option("--since", type=click.DateTime(), help="Only records dead-lettered at or after this time (UTC).")
@click.option("--until", type=click.DateTime(), help="Only records dead-lettered before this time (UTC).")
def replay(config_path: str, from_path: str | None, reasons: tuple[str, ...], since, until) -> None:
    """Send dead-lettered records through the pipeline again, after a fix."""
    from datetime import timezone
    from pathlib import Path

    from rich.progress import Progress

    from personalize_hub.replay import ReplayFilter, read_dead_letter
    from personalize_hub.replay import replay as run_replay
    from personalize_hub.runtime import Hub

    config = _load(config_path)
    path = Path(from_path) if from_path else getattr(config.dead_letter, "path", None)
    if path is None or not Path(path).exists():
        click.echo("no dead-letter file to replay: give --from PATH", err=True)
        sys.exit(2)
    selection = ReplayFilter(
        reasons=frozenset(reasons),
        since=since.replace(tzinfo=timezone.utc) if since else None,
        until=until.replace(tzinfo=timezone.utc) if until else None,
    )
    total = sum(1 for _ in read_dead_letter(Path(path)))

    async def go():
        hub = Hub(config)
        await hub.start_delivery()
        try:
            with Progress(transient=True) as progress:
                task = progress.add_task("replaying", total=total)
                return await run_replay(hub, read_dead_letter(Path(path)), selection,
                                        progress=lambda n: progress.advance(task, n))
        finally:
            await hub.stop()

    with _config_problems_exit():
        summary = asyncio.run(go())
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(summary.outcomes.items())) or "nothing"
    click.echo(f"read {summary.read}, replayed {summary.selected} ({counts})")
    for reason, count in summary.reasons.most_common():
        click.echo(f"  still rejected: {reason} x{count}")
    if summary.failed:
        # Scripts and CI run `hub replay` after a fix: a replay that did not clear the records must fail.
        click.echo(f"{summary.failed} of {summary.selected} records failed again", err=True)
        sys.exit(1)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Hub YAML file.")
def readiness(config_path: str) -> None:
    """Per dataset group: interactions, users with >= 2, items, event types, against the training minimums."""
    from rich.console import Console
    from rich.table import Table

    from connectors.destinations.personalize.readiness import MIN_INTERACTIONS, MIN_USERS_WITH_TWO

    config = _load(config_path)

    async def collect():
        store = config.readiness.build()
        try:
            return [await store.report(key) for key in await store.keys()]
        finally:
            await store.close()

    reports = asyncio.run(collect())
    if not reports:
        click.echo("no interactions delivered to Personalize yet")
        return
    table = Table(title="Training readiness (what this hub delivered)")
    for column in ("dataset group (tracking id)", f"interactions (>= {MIN_INTERACTIONS})",
                   f"users with >= 2 (>= {MIN_USERS_WITH_TWO})", "users", "items", "event types", "ready"):
        table.add_column(column)
    for r in reports:
        types = ", ".join(f"{t} {n}" for t, n in sorted(r.event_types.items(), key=lambda kv: -kv[1]))
        table.add_row(r.key, str(r.interactions), str(r.users_with_two), str(r.users), str(r.items), types,
                      "yes" if r.ready else "no: " + "; ".join(r.missing()))
    Console().print(table)


main.add_command(jobs)  # batch jobs: `hub jobs list | run NAME | status RUN`


@main.command(name="import")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Hub YAML file.")
@click.option("--dataset-arn", required=True, help="The Personalize dataset to fill (INTERACTIONS, ITEMS or USERS).")
@click.option("--source", required=True, help="The input: a path, file:///path or s3://bucket/key.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "parquet"]), default=None,
              help="Input format (default: from the name's suffix). jsonl takes flat rows or Segment/mParticle exports; "
                   "parquet is read from a local copy of an s3:// object.")
@click.option("--mode", type=click.Choice(["FULL", "INCREMENTAL"]), default="FULL", show_default=True,
              help="FULL replaces the dataset's bulk data, INCREMENTAL adds to it.")
@click.option("--dry-run", is_flag=True, help="Validate and report readiness; upload nothing (exit 3 on findings).")
@click.option("--force", is_flag=True, help="Import even when the readiness check refuses the data.")
def import_(config_path: str, dataset_arn: str, source: str, fmt: str | None, mode: str, dry_run: bool,
            force: bool) -> None:
    """Validate a history file like live events, report readiness, then run a dataset import job.

    Exit 0: imported (or a clean dry run); 1: failed, with the reason; 3: refused by the readiness check or
    findings of a dry run.
    """
    from personalize_hub.imports.report import run_with_progress

    config = _load(config_path)
    sys.exit(run_with_progress(config, dataset_arn=dataset_arn, source=source, format=fmt, mode=mode,
                               dry_run=dry_run, force=force))


@main.command()
@click.option("--users", default=2000, show_default=True, help="Shoppers in the synthetic shop.")
@click.option("--data-dir", default="var/demo", show_default=True, type=click.Path(file_okay=False),
              help="Where the demo keeps its state (emptied first).")
@click.option("--keep-running", is_flag=True, help="Leave the hub, its console and local_personalize up afterwards.")
def demo(users: int, data_dir: str, keep_running: bool) -> None:
    """Run the whole hub on this machine: local_personalize, a synthetic shop, training, live updates."""
    from pathlib import Path

    from rich.console import Console

    from hub.telemetry import setup_logging
    from personalize_hub.demo.run import run_demo

    setup_logging("WARNING")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(Path(data_dir), users, Console(), keep_running=keep_running))


if __name__ == "__main__":
    main()
