"""The steps of a run — start, prepare input, submit the batch job, poll it — shared by Celery and the eager driver."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from botocore.exceptions import ClientError

from hub.errors import HubError
from workers.config import ActiveUsers, BatchJobConfig, Recipe
from workers import active_users, context, objects, personalize
from workers.keys import contacts_key
from workers.notifications import notify
from workers.runs import RunState, Runs

# Batch inference input: at most 1 GB and 50 million records per file; Item-Affinity segment jobs take
# at most 500 queries per input file (docs/reference/personalize-api.md#quotas).
MAX_INPUT_BYTES = 1 << 30
MAX_INPUT_RECORDS = 50_000_000
MAX_SEGMENT_QUERIES = 500
CONTACTS_PER_WRITE = 1000
MAX_INPUT_PROBLEMS = 5  # bad input lines quoted in the run record


class RunFailed(HubError):
    """The run cannot complete; the message becomes its `error`."""


class RunOver(HubError):
    """The run is final already: a late or duplicate task stops here."""


@dataclass(frozen=True)
class Wait:
    """Poll again after this long (a Celery countdown, or a sleep in the eager driver)."""

    secs: float


def runs() -> Runs:
    workers = context.hub_config().workers
    return Runs(context.sync_redis(), workers.state_ttl_days * 86_400)


def work_folder(job: BatchJobConfig, run_id: str) -> str:
    base = job.work_uri or objects.join(context.hub_config().workers.work_uri, job.name)
    return objects.join(base, run_id)


def start(job_name: str, run_id: str) -> bool:
    """Record the run; False when it exists already (a redelivered start, or a resumed run id)."""
    job = context.job_config(job_name)
    return runs().create(run_id, job.name, "segment" if job.recipe.is_segment else "inference")


def job_of(run_id: str) -> tuple[BatchJobConfig, dict[str, str]]:
    """The run's job and record; RunOver when the run is final."""
    run = runs().get(run_id)
    if not run:
        raise RunFailed(f"no run {run_id} (expired after workers.state_ttl_days, or never started)")
    if RunState(run["state"]).final:
        raise RunOver(f"run {run_id} is {run['state']}")
    return context.job_config(run["job"]), run


def prepare(run_id: str) -> None:
    """Write the batch input JSON lines (streamed) and keep each user's email and attributes in Redis."""
    job, run = job_of(run_id)
    if run.get("input_uri"):
        return  # prepared by an earlier delivery of this task
    runs().set_state(run_id, RunState.PREPARING)
    s3 = context.sync_client("s3")
    if isinstance(job.input, ActiveUsers):
        try:
            lines = active_users.active_user_lines(context.hub_config().identity, job.input.active_in_last_days)
        except active_users.NoActivityIndex as err:
            raise RunFailed(str(err)) from None
    else:
        lines = objects.read_lines(job.input, s3)
    input_uri = objects.join(work_folder(job, run_id), "input", f"{job.name}.jsonl")
    with (refusals_fail_the_run(f"writing the batch input from {job.input} to {input_uri}"),
          tempfile.NamedTemporaryFile(prefix="hub-batch-input-", suffix=".jsonl") as temp):
        counts = _write_input(job, run_id, lines, temp)
        temp.flush()
        if counts["records"] == 0:
            raise RunFailed(f"{job.input}: no usable {job.recipe.input_key} lines "
                            f"({counts['rejected']} rejected: {'; '.join(counts['problems']) or 'empty'})")
        objects.upload(Path(temp.name), input_uri, s3)
    runs().update(run_id, input_uri=input_uri, output_folder=objects.join(work_folder(job, run_id), "output") + "/",
                  users_in=counts["records"], input_rejected=counts["rejected"],
                  input_problems=" | ".join(counts["problems"]), contacts=int(counts["contacts"] > 0))


def _write_input(job: BatchJobConfig, run_id: str, lines: Any, out: Any) -> dict[str, Any]:
    key_name = job.recipe.input_key
    limit = MAX_SEGMENT_QUERIES if job.recipe.is_segment else MAX_INPUT_RECORDS
    counts: dict[str, Any] = {"records": 0, "rejected": 0, "contacts": 0, "problems": [], "bytes": 0}
    pending: dict[str, bytes] = {}
    redis = context.sync_redis()
    ttl = context.hub_config().workers.state_ttl_days * 86_400
    for number, raw in enumerate(lines, 1):
        try:
            line = orjson.loads(raw)
            key = line.get(key_name)
        except (orjson.JSONDecodeError, AttributeError):
            line, key = None, None
        if not isinstance(key, str) or not key:
            counts["rejected"] += 1
            if len(counts["problems"]) < MAX_INPUT_PROBLEMS:
                counts["problems"].append(f"line {number}: no {key_name} string")
            continue
        record: dict[str, Any] = {key_name: key}
        if job.filter_values:  # filter parameters go per line (docs/reference/personalize-api.md#batch-inference-jobs)
            record["filterValues"] = job.filter_values
        data = orjson.dumps(record) + b"\n"
        counts["bytes"] += len(data)
        counts["records"] += 1
        if counts["records"] > limit or counts["bytes"] > MAX_INPUT_BYTES:
            raise RunFailed(f"{job.input}: more than {limit} records or {MAX_INPUT_BYTES} bytes, the batch "
                            "job input limit (docs/reference/personalize-api.md#quotas)")
        out.write(data)
        extra = {k: v for k, v in line.items() if k != key_name}
        if extra and job.recipe is Recipe.USER_RECOMMENDATIONS:
            email = extra.pop("email", None)
            pending[key] = orjson.dumps({"email": email if isinstance(email, str) else None, "attributes": extra})
            if len(pending) >= CONTACTS_PER_WRITE:
                counts["contacts"] += _save_contacts(redis, run_id, pending, ttl)
    counts["contacts"] += _save_contacts(redis, run_id, pending, ttl)
    return counts


def _save_contacts(redis: Any, run_id: str, contacts: dict[str, bytes], ttl: int) -> int:
    if not contacts:
        return 0
    pipe = redis.pipeline(transaction=False)
    pipe.hset(contacts_key(run_id), mapping=contacts)
    pipe.expire(contacts_key(run_id), ttl)
    pipe.execute()
    count = len(contacts)
    contacts.clear()
    return count


def submit(run_id: str) -> None:
    """Create the batch job under the run's deterministic name; an existing one is polled, not duplicated."""
    job, run = job_of(run_id)
    if run.get("batch_job_arn"):
        return
    client = context.sync_client("personalize")
    api = personalize.api_for(job)
    name = personalize.job_name_for(run_id)
    with refusals_fail_the_run(f"creating batch job {name}"):
        try:
            version, version_source = personalize.solution_version_of(client, job)
        except personalize.NoActiveVersion as err:
            raise RunFailed(str(err)) from None
        arn = personalize.create_or_find(client, api, name=name, job=job, solution_version_arn=version,
                                         input_uri=run["input_uri"], output_folder=run["output_folder"],
                                         role_arn=context.hub_config().workers.role_arn)
    runs().set_state(run_id, RunState.INFERRING, batch_job_arn=arn, batch_job_name=name,
                     solution_version_arn=version, solution_version_source=version_source, submitted_at=time.time())


def _other_run_exporting(job: BatchJobConfig, run_id: str) -> str | None:
    """Another run of the same job that is still exporting, if any (the last few runs are checked): an older
    one, or a newer one whose batch job ended first.

    One whose heartbeat is older than `workers.run_lease_secs` was abandoned (a worker killed and its
    task lost, an eager `hub jobs run` killed): it is failed with that reason, not waited for. Its
    in-flight sends stay `sending` (reported as unknown) and keep their pending marks, so this run
    does not resend them blindly either.
    """
    lease = context.hub_config().workers.run_lease_secs
    for other in runs().recent(job.name, 5):
        record = runs().get(other) if other != run_id else {}
        if record.get("state") != RunState.EXPORTING.value:
            continue
        silent_secs = time.time() - Runs.last_beat(record)
        if silent_secs <= lease:
            return other
        runs().fail(other, f"abandoned: no heartbeat for {silent_secs:.0f}s while exporting (workers.run_lease_secs "
                           f"{lease:.0f}); its in-flight sends are reported unknown; run {run_id} went on")
    return None


@contextlib.contextmanager
def refusals_fail_the_run(doing: str) -> Iterator[None]:
    """AWS refusing a request (bad ARN, wrong recipe, no such bucket) fails the run with its own words."""
    try:
        yield
    except ClientError as err:
        if personalize.transient(err):
            raise
        detail = err.response.get("Error", {})
        raise RunFailed(f"{doing}: {detail.get('Code', 'error')}: {detail.get('Message', err)}") from None


def poll(run_id: str) -> Wait | None:
    """None once the batch job is ACTIVE (and the output is located); Wait while it runs."""
    job, run = job_of(run_id)
    if run.get("output_uri"):
        return None
    workers = context.hub_config().workers
    client = context.sync_client("personalize")
    with refusals_fail_the_run(f"polling batch job {run['batch_job_name']}"):
        status, reason = personalize.status_of(client, personalize.api_for(job), run["batch_job_arn"])
    if status == personalize.CREATE_FAILED:
        notify(context.hub_config().notifications, "batch_job.failed", job.name, run_id,
               batch_job_arn=run["batch_job_arn"], reason=reason)
        raise RunFailed(f"batch job {run['batch_job_name']} failed: {reason or 'no reason given'}")
    if status != personalize.ACTIVE:
        if time.time() - float(run.get("submitted_at", time.time())) > workers.max_wait_secs:
            raise RunFailed(f"batch job {run['batch_job_name']} still {status} after {workers.max_wait_secs:.0f}s")
        return Wait(workers.poll_interval_secs)
    exporting = _other_run_exporting(job, run_id)
    if exporting:
        # Two runs of a job exporting at once would each send a user whose items changed, and each overwrites
        # the other's sent and unchanged in the job's last-sync hash (workers/ledger.py): one at a time.
        waiting_since = float(run.get("waiting_since") or time.time())
        if time.time() - waiting_since > workers.max_wait_secs:  # alive but not finishing: never wait forever
            raise RunFailed(f"waited {time.time() - waiting_since:.0f}s (workers.max_wait_secs) for run {exporting} "
                            "of this job to finish exporting; it still is")
        runs().update(run_id, waiting_for=exporting, waiting_since=waiting_since)
        return Wait(workers.poll_interval_secs)
    # Output: "<input file name>.out" in the output folder (docs/reference/personalize-api.md#batch-inference-jobs).
    output_uri = run["output_folder"] + run["input_uri"].rsplit("/", 1)[-1] + ".out"
    size = objects.size_of(output_uri, context.sync_client("s3"))
    if size is None:
        raise RunFailed(f"batch job {run['batch_job_name']} is ACTIVE but wrote no {output_uri}")
    runs().set_state(run_id, RunState.EXPORTING, output_uri=output_uri, output_bytes=size,
                     shards=job.export_shards)
    notify(context.hub_config().notifications, "batch_job.finished", job.name, run_id,
           batch_job_arn=run["batch_job_arn"], solution_version_arn=run.get("solution_version_arn"),
           output_uri=output_uri)
    return None
