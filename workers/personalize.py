"""Batch inference and batch segment jobs on the Personalize control plane: deterministic names, create-or-find."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from workers.config import BatchJobConfig

# Job names: 1..63 of [a-zA-Z0-9][a-zA-Z0-9\-_]* (docs/reference/personalize-api.md#resource-names).
MAX_JOB_NAME = 63
_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9_-]")
# Batch jobs report PENDING / IN PROGRESS (model text) or CREATE PENDING / CREATE IN_PROGRESS; only
# these two are final (docs/reference/personalize-api.md#statuses).
ACTIVE, CREATE_FAILED = "ACTIVE", "CREATE FAILED"


@dataclass(frozen=True)
class BatchJobApi:
    """The operations and keys of one batch job kind."""

    create: str
    describe: str
    list: str
    arn_key: str
    doc_key: str
    list_key: str


INFERENCE = BatchJobApi("create_batch_inference_job", "describe_batch_inference_job", "list_batch_inference_jobs",
                        "batchInferenceJobArn", "batchInferenceJob", "batchInferenceJobs")
SEGMENT = BatchJobApi("create_batch_segment_job", "describe_batch_segment_job", "list_batch_segment_jobs",
                      "batchSegmentJobArn", "batchSegmentJob", "batchSegmentJobs")


def api_for(job: BatchJobConfig) -> BatchJobApi:
    return SEGMENT if job.recipe.is_segment else INFERENCE


def job_name_for(run_id: str) -> str:
    """The Personalize job name of a run: the run id itself when it fits (it always does for valid job names)."""
    name = _NOT_IN_NAME.sub("-", run_id).lstrip("-_") or "run"
    return name[:MAX_JOB_NAME]


def error_code(err: ClientError) -> str:
    return err.response.get("Error", {}).get("Code", "")


class NoActiveVersion(LookupError):
    """A solution with no ACTIVE version to run a batch job on."""


def solution_version_of(client: Any, job: BatchJobConfig) -> tuple[str, str]:
    """(solution version ARN, where it came from): the job's own, its campaign's, or its solution's newest ACTIVE.

    Resolved when a run submits, so a job naming a campaign or `version: latest_active` follows retraining.
    """
    if job.solution_version_arn:
        return job.solution_version_arn, "solution_version_arn"
    if job.campaign_arn:
        campaign = client.describe_campaign(campaignArn=job.campaign_arn)["campaign"]
        return campaign["solutionVersionArn"], f"served by campaign {job.campaign_arn}"
    return latest_active_version(client, job.solution_arn), f"latest ACTIVE version of {job.solution_arn}"


def latest_active_version(client: Any, solution_arn: str) -> str:
    """The newest ACTIVE version of a solution (ListSolutionVersions pages, docs/reference/personalize-api.md#pagination); NoActiveVersion if none."""
    newest: tuple[Any, str] | None = None
    token = None
    while True:
        page = client.list_solution_versions(solutionArn=solution_arn, maxResults=100,
                                             **({"nextToken": token} if token else {}))
        for summary in page.get("solutionVersions", []):
            if summary.get("status") == ACTIVE:
                created = summary.get("creationDateTime")
                created = created.timestamp() if hasattr(created, "timestamp") else float(created or 0)
                if newest is None or created > newest[0]:
                    newest = (created, summary["solutionVersionArn"])
        token = page.get("nextToken")
        if not token:
            break
    if newest is None:
        raise NoActiveVersion(f"solution {solution_arn} has no ACTIVE version (train one first)")
    return newest[1]


def create_or_find(client: Any, api: BatchJobApi, *, name: str, job: BatchJobConfig, solution_version_arn: str,
                   input_uri: str, output_folder: str, role_arn: str) -> str:
    """Create the batch job, or, when a job of that name exists (a retried task), return its ARN to poll."""
    request: dict[str, Any] = {
        "jobName": name,
        "solutionVersionArn": solution_version_arn,
        "jobInput": {"s3DataSource": {"path": input_uri}},
        "jobOutput": {"s3DataDestination": {"path": output_folder}},
        "roleArn": role_arn,
        "numResults": job.num_results,
    }
    if job.filter_arn:
        request["filterArn"] = job.filter_arn
    try:
        return getattr(client, api.create)(**request)[api.arn_key]
    except ClientError as err:
        if error_code(err) != "ResourceAlreadyExistsException":
            raise
    return find(client, api, name, solution_version_arn)


def find(client: Any, api: BatchJobApi, name: str, solution_version_arn: str) -> str:
    """The ARN of the named job among the solution version's jobs (ListBatch*Jobs pages, docs/reference/personalize-api.md#pagination)."""
    token = None
    while True:
        page = getattr(client, api.list)(solutionVersionArn=solution_version_arn, maxResults=100,
                                         **({"nextToken": token} if token else {}))
        for summary in page.get(api.list_key, []):
            if summary.get("jobName") == name:
                return summary[api.arn_key]
        token = page.get("nextToken")
        if not token:
            raise LookupError(f"batch job {name} exists but is not listed under {solution_version_arn}")


def status_of(client: Any, api: BatchJobApi, arn: str) -> tuple[str, str | None]:
    """(status, failureReason) of a batch job."""
    doc = getattr(client, api.describe)(**{api.arn_key: arn})[api.doc_key]
    return doc.get("status", ""), doc.get("failureReason")


def transient(err: Exception) -> bool:
    """A control-plane or S3 error worth retrying the step for (throttling, 5xx, connection)."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import ReadTimeoutError

    if isinstance(err, (BotoConnectionError, ReadTimeoutError)):
        return True
    if isinstance(err, ClientError):
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or status == 429 or error_code(err) in (
            "ThrottlingException", "LimitExceededException", "ResourceInUseException", "SlowDown")
    return False


def retrying(call: Any, *args: Any, policy: Any, sleep: Any = None, **kwargs: Any) -> Any:
    """`call(*args, **kwargs)`, retried with `policy`'s full-jitter backoff while the error is `transient`.

    For synchronous callers outside Celery (the CLI): inside a task, Celery's own retry is the owner.
    """
    import time

    started, attempt = time.monotonic(), 0
    while True:
        attempt += 1
        try:
            return call(*args, **kwargs)
        except Exception as err:
            delay = policy.backoff_secs(attempt)
            if not transient(err) or not policy.may_retry(attempt, time.monotonic() - started, delay):
                raise
            (sleep or time.sleep)(delay)
