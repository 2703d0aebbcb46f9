"""Dataset export jobs: a dataset's BULK, PUT or ALL data as a CSV file in S3 (runs in a job process).

https://docs.aws.amazon.com/personalize/latest/dg/API_CreateDatasetExportJob.html: BULK is what import jobs
wrote, PUT what PutEvents / PutItems / PutUsers / PutActions / PutActionInteractions wrote, ALL both. The file
is `<jobOutput path><jobName>/<dataset type>.csv`, one column per schema field in schema order (the reference
does not name the files; this layout is local_personalize's).
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from local_personalize.control.common import ACTIVE, CREATE_FAILED, CREATE_IN_PROGRESS
from local_personalize.ingest import dataset_schema
from local_personalize.objects import ObjectStore, join
from local_personalize.jobs import failure_reason
from local_personalize.settings import Settings
from local_personalize.store import Store

# Interactions columns the store keeps outside the row's `properties` JSON.
_COLUMNS = ("user_id", "item_id", "ts", "event_type", "event_value", "impression", "recommendation_id",
            "properties", "source")


def _wanted(source: str, mode: str) -> bool:
    put = source == "event"  # Put* rows; import rows carry their job's ARN
    return mode == "ALL" or put == (mode == "PUT")


def _cell(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return "" if value is None else value


def export_rows(store: Store, dataset_arn: str, mode: str) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of the dataset's data of ingestion mode `mode`."""
    dataset = store.get_resource(dataset_arn)
    if dataset is None:
        raise ValueError(f"Dataset {dataset_arn} no longer exists")
    header = list(dataset_schema(store, dataset).names)
    rows = []
    if dataset.doc["datasetType"] in ("INTERACTIONS", "ACTION_INTERACTIONS"):
        item_column = "ACTION_ID" if "ACTION_ID" in header else "ITEM_ID"
        for batch in store.iter_interactions(dataset_arn, _COLUMNS):
            for user, item, ts, event_type, value, impression, recommendation, properties, source in batch:
                if not _wanted(source, mode):
                    continue
                row = {"USER_ID": user, item_column: item, "TIMESTAMP": ts, "EVENT_TYPE": event_type,
                       "EVENT_VALUE": value, "IMPRESSION": impression, "RECOMMENDATION_ID": recommendation,
                       **(orjson.loads(properties) if properties else {})}
                rows.append([_cell(row.get(name)) for name in header])
    else:
        for record, source in store.records_with_source(dataset_arn):
            if _wanted(source, mode):
                rows.append([_cell(record.get(name)) for name in header])
    return header, rows


def run_dataset_export_job(settings: Settings, job_arn: str) -> None:
    """Job-process entry point: write the CSV file and record ACTIVE, or CREATE FAILED with the reason."""
    store = Store(settings.db_path)
    try:
        store.update_resource(job_arn, status=CREATE_IN_PROGRESS)
        job = store.get_resource(job_arn).doc
        try:
            header, rows = export_rows(store, job["datasetArn"], job["ingestionMode"])
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
            dataset_type = job["datasetArn"].rsplit("/", 1)[-1]
            folder = join(job["jobOutput"]["s3DataDestination"]["path"], job["jobName"])
            ObjectStore.for_settings(settings).write(join(folder, f"{dataset_type}.csv"), out.getvalue().encode())
        except Exception as error:  # any failure (S3 error, dataset gone) becomes the job's failureReason
            store.update_resource(job_arn, status=CREATE_FAILED, failureReason=failure_reason(error))
            return
        store.update_resource(job_arn, status=ACTIVE)
    finally:
        store.close()
