"""Data deletion jobs: remove the users listed in a USER_ID CSV from a dataset group (runs in a job process).

Their interactions, action interactions and Users records are deleted, so no later training sees them, and
the users are recorded as deleted so that models trained before the job stop serving their history
(serving.py) and segment jobs leave them out (batch.py).
https://docs.aws.amazon.com/personalize/latest/dg/delete-records.html
"""

from __future__ import annotations

import csv
import io

from local_personalize.control.deletions import FAILED, IN_PROGRESS
from local_personalize.ingest import group_dataset
from local_personalize.objects import ObjectStore
from local_personalize.jobs import failure_reason
from local_personalize.settings import Settings
from local_personalize.store import Store

# "The maximum combined size of one or more data deletion input files is 100 MB" (delete-records.html).
MAX_INPUT_BYTES = 100 * 1024 * 1024


class DeletionFailed(ValueError):
    """The job cannot run; str(error) is its failureReason."""


def users_to_delete(objects: ObjectStore, location: str) -> list[str]:
    """The USER_ID column of every CSV file at `location` (never echoing the files' text in errors)."""
    files = objects.list(location)
    if not files:
        raise DeletionFailed(f"No input files at {location}")
    users, total = [], 0
    for url in files:
        data = objects.read(url)
        total += len(data)
        if total > MAX_INPUT_BYTES:
            raise DeletionFailed(f"Input files are larger than {MAX_INPUT_BYTES} bytes in total")
        name = url.rsplit("/", 1)[-1]
        try:
            reader = csv.reader(io.StringIO(data.decode("utf-8-sig")))
        except UnicodeDecodeError:
            raise DeletionFailed(f"{name} is not UTF-8 text") from None
        header = [column.strip().upper() for column in next(reader, [])]
        if "USER_ID" not in header:
            raise DeletionFailed(f"{name}: the header has no USER_ID column")
        column = header.index("USER_ID")
        users.extend(cells[column] for cells in reader if len(cells) > column and cells[column])
    return users


def delete_users(store: Store, objects: ObjectStore, job_arn: str) -> int:
    job = store.get_resource(job_arn)
    group_arn = job.doc["datasetGroupArn"]
    if store.get_resource(group_arn) is None:
        raise DeletionFailed(f"Dataset group {group_arn} no longer exists")
    users = users_to_delete(objects, job.doc["dataSource"]["dataLocation"])
    datasets = {kind: group_dataset(store, group_arn, kind)
                for kind in ("INTERACTIONS", "ACTION_INTERACTIONS", "USERS")}
    interactions = [d.arn for kind, d in datasets.items() if d is not None and kind != "USERS"]
    records = [datasets["USERS"].arn] if datasets["USERS"] is not None else []
    return store.delete_users(group_arn, interactions, records, users, job_arn)


def run_data_deletion_job(settings: Settings, job_arn: str) -> None:
    """Job-process entry point: delete the data and record numDeleted, or FAILED with the reason.

    The job stays IN_PROGRESS: the server marks it COMPLETED once its live models have forgotten the
    users too (service.py), so a caller that sees COMPLETED is never served the deleted data again.
    """
    store = Store(settings.db_path)
    try:
        store.update_resource(job_arn, status=IN_PROGRESS)
        if "numDeleted" in store.get_resource(job_arn).doc:
            return  # the data went in an earlier run; only the server's last step is left
        try:
            deleted = delete_users(store, ObjectStore.for_settings(settings), job_arn)
        except Exception as error:  # any failure (bad file, S3 error) becomes the job's failureReason
            store.update_resource(job_arn, status=FAILED, failureReason=failure_reason(error))
            return
        store.update_resource(job_arn, numDeleted=deleted)
    finally:
        store.close()
