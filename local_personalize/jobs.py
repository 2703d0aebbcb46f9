"""Job processes: `python -m local_personalize.jobs WORK ARN SETTINGS_JSON` runs one background job.

A fresh process per job (imports take about a second, nothing next to training) keeps a crashing or
memory-hungry job away from the server, gets its own BLAS threads, and needs no pool to repair.
Each job records its own outcome (status, failureReason) in the store.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from local_personalize.settings import Settings

WORK_KINDS = ("import", "train", "batch-inference-job", "batch-segment-job", "data-deletion-job",
              "dataset-export-job")


def job_function(work: str) -> Callable[[Settings, str], None]:
    # Imported lazily: the server process only needs the names, the job process the code.
    if work == "import":
        from local_personalize.imports import run_import_job
        return run_import_job
    if work == "train":
        from local_personalize.training import run_solution_version
        return run_solution_version
    if work == "data-deletion-job":
        from local_personalize.deletion import run_data_deletion_job
        return run_data_deletion_job
    if work == "dataset-export-job":
        from local_personalize.exports import run_dataset_export_job
        return run_dataset_export_job
    from local_personalize.batch import run_batch_job
    segment = work == "batch-segment-job"
    return lambda settings, arn: run_batch_job(settings, arn, segment=segment)


def failure_reason(error: Exception) -> str:
    """A job's failureReason from the exception that ended it (at most 1000 characters)."""
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return message[:1000]


def command(work: str, arn: str, settings: Settings) -> list[str]:
    """The argv that runs `work` on `arn` in a new Python process."""
    fields = {name: str(value) if isinstance(value, Path) else value for name, value in vars(settings).items()}
    return [sys.executable, "-m", "local_personalize.jobs", work, arn, orjson.dumps(fields).decode()]


# How often a job checks that the server that started it is still there.
PARENT_CHECK_SECS = 1.0


def exit_with_parent() -> None:
    """End this job if its server dies: the restarted server runs the unfinished job again itself."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECS)
        os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    exit_with_parent()
    work, arn, settings_json = argv or sys.argv[1:]
    fields = orjson.loads(settings_json)
    settings = Settings(**{**fields, "data_dir": Path(fields["data_dir"]), "file_roots": tuple(fields["file_roots"])})
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s job[{work}] %(message)s")
    job_function(work)(settings, arn)


if __name__ == "__main__":
    main()
