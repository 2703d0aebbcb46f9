"""BLAS thread limits: one thread in the serving process, the machine's default in job processes.

A recommendation is a few small matrix products; OpenBLAS spreading each over every core only makes the
server fight its clients and its own training jobs for CPU (measured by bench/local_personalize_serving.py:
p99 11.9 ms with default threads, 3.2 ms with one). Training, in its own process, keeps the default.
The variables must be set before numpy is first imported, so `__main__` calls this first thing.
"""

from __future__ import annotations

import os

BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_job_environment: dict[str, str | None] = {}


def limit_blas_threads_for_serving() -> None:
    """Pin BLAS to one thread in this process, remembering what job processes should get instead."""
    for name in BLAS_THREAD_VARS:
        _job_environment.setdefault(name, os.environ.get(name))
        os.environ[name] = "1"


def job_environment() -> dict[str, str]:
    """The environment for a job process: this one's, with the BLAS thread settings it started with."""
    environment = dict(os.environ)
    for name, value in _job_environment.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return environment
