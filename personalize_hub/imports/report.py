"""What `hub import` shows: a progress bar while reading and waiting, the readiness table, the summary."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from personalize_hub.imports.run import IMPORTED, REFUSED, Importer, ImportRequest, ImportResult
from personalize_hub.imports.run import Progress as ImportProgress


def run_with_progress(config: Any, **request: Any) -> int:
    """Run one import with progress on stderr and the report on stdout; the exit code."""
    console, errors = Console(), Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                  console=errors, transient=True) as bar:
        reading = bar.add_task("reading and validating", total=None)
        waiting = None

        def wait(status: str, secs: float) -> None:
            nonlocal waiting
            if waiting is None:
                bar.update(reading, visible=False)
                waiting = bar.add_task("import job", total=None)
            bar.update(waiting, description=f"import job: {status}")

        progress = ImportProgress(reading=lambda done, total: bar.update(reading, completed=done, total=total),
                                  waiting=wait)
        result = Importer(config, ImportRequest(**request), progress).run()
    show(result, console, errors)
    return result.exit_code


def show(result: ImportResult, console: Console, errors: Console) -> None:
    readiness = result.readiness
    if readiness is not None:
        table = Table(title=f"Import readiness ({readiness.dataset_type}, {readiness.mode})", show_header=False)
        for label, value in readiness.lines():
            table.add_row(label, value)
        console.print(table)
        for problem in result.problems or ():
            console.print(f"refused: {problem}")
    if result.rejects_path is not None:
        console.print(f"rejected rows (line, reason, message): {result.rejects_path}")
    if result.job_arn:
        console.print(f"import job: {result.job_arn}")
    if result.data_location:
        console.print(f"data: {result.data_location}")
    if result.exit_code == IMPORTED:
        rows = readiness.rows if readiness else 0
        console.print(f"imported {rows} rows" if result.job_arn else f"dry run: {rows} rows would be imported")
    elif result.exit_code == REFUSED:
        errors.print(f"not imported: {result.reason or 'the dry run found problems'}", markup=False)
    else:
        errors.print(f"import failed: {result.reason}", markup=False)
