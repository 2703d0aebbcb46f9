"""The `jobs:` section as the application composes it: batch jobs over the registered export destinations,
retraining jobs; the job types themselves and the `workers:` section are the batch side's (workers/config.py)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Discriminator, Field, Tag

from personalize_hub import registry
from workers.config import BatchJobConfig, GateConfig, Recipe, TrainJobConfig, WorkersConfig

__all__ = ["JOB_KINDS", "AnyJob", "GateConfig", "JobConfig", "Jobs", "Recipe", "TrainJobConfig", "WorkersConfig",
           "check_jobs"]


class JobConfig(BatchJobConfig):
    """One batch job, its destinations any export destination of the registry."""

    destinations: list[registry.destination_config_type()] = Field(  # type: ignore[valid-type]
        ..., min_length=1, description="Where each user's (or audience's) recommendations are pushed.")

    def _misplaced_destinations(self) -> list[str]:
        return [f"destinations[{i}]: {problem}" for i, d in enumerate(self.destinations)
                if (problem := registry.misplaced_destination(d.type, in_job=True))]


def _job_kind(value: Any) -> str:
    recipe = value.get("recipe") if isinstance(value, dict) else getattr(value, "recipe", None)
    return "train" if recipe == "train" else "batch"


JOB_KINDS = ("batch", "train")  # the union's tags (config error paths leave them out)
AnyJob = Annotated[Annotated[JobConfig, Tag("batch")] | Annotated[TrainJobConfig, Tag("train")],
                   Discriminator(_job_kind)]


def _unique_names(jobs: list[JobConfig]) -> list[JobConfig]:
    names = [job.name for job in jobs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"job names must be unique; repeated: {', '.join(repeated)}")
    return jobs


Jobs = Annotated[list[AnyJob], AfterValidator(_unique_names)]


def check_jobs(jobs: list[JobConfig], workers: WorkersConfig) -> list[str]:
    """Problems between the two sections (a job needs Redis and a work folder)."""
    problems = []
    if jobs and not workers.redis_url:
        problems.append("workers.redis_url: jobs need Redis (broker, ledger, reports)")
    for i, job in enumerate(jobs):
        if isinstance(job, JobConfig) and not (job.work_uri or workers.work_uri):
            problems.append(f"jobs[{i}].work_uri: no work folder (set it or workers.work_uri)")
    return problems
