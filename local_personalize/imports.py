"""Dataset import jobs: CSV from S3 or file:// into the store (runs in a job process, docs/reference/personalize-api.md#dataset-schemas)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import orjson

from local_personalize import attribution
from local_personalize.control.common import ACTIVE, CREATE_FAILED, CREATE_IN_PROGRESS
from local_personalize.ingest import dataset_schema, group_dataset
from local_personalize.objects import ObjectStore
from local_personalize.schemas import DatasetSchema
from local_personalize.jobs import failure_reason
from local_personalize.settings import Settings
from local_personalize.store import Store

# Quota: an interactions import job needs at least 1000 records, FULL or INCREMENTAL
# (docs/reference/personalize-api.md#quotas).
MIN_INTERACTION_RECORDS = 1000
# Interactions columns with their own store column; any other column goes into `properties`.
INTERACTION_FIELDS = ("USER_ID", "ITEM_ID", "ACTION_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "IMPRESSION",
                      "RECOMMENDATION_ID")
ROWS_PER_COMMIT = 50_000


class ImportFailed(ValueError):
    """The data cannot be imported; str(error) is the job's failureReason."""


def _rows(schema: DatasetSchema, name: str, text: str) -> Iterator[dict[str, Any]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return
    fields = []
    # Failure reasons name files, lines, columns and schema fields, never a cell's text: whatever file the
    # job was pointed at, its contents must not come back through DescribeDatasetImportJob.
    for position, column in enumerate(header, start=1):
        field = schema.field(column.strip()) or schema.field(column.strip().upper())
        if field is None:
            raise ImportFailed(f"{name}: header column {position} is not a field of the dataset schema "
                               f"(fields: {', '.join(f.name for f in schema.fields)})")
        fields.append(field)
    missing = [f.name for f in schema.fields if not f.nullable and f not in fields]
    if missing:
        raise ImportFailed(f"{name}: input CSV is missing the following columns: {missing}")
    for line, cells in enumerate(reader, start=2):
        if not cells:
            continue
        if len(cells) != len(fields):
            raise ImportFailed(f"{name} line {line}: expected {len(fields)} values, found {len(cells)}")
        row = {}
        for field, cell in zip(fields, cells):
            try:
                row[field.name] = field.coerce(cell)
            except ValueError:
                raise ImportFailed(f"{name} line {line}: the {field.name} value is not a valid "
                                   f"{'/'.join(sorted(field.types))}") from None
        yield row


def _text(objects: ObjectStore, url: str) -> str:
    try:
        return objects.read(url).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFailed(f"{url.rsplit('/', 1)[-1]} is not UTF-8 text") from None


def _interaction(row: dict[str, Any], source: str) -> tuple:
    extra = {key: value for key, value in row.items() if key not in INTERACTION_FIELDS and value is not None}
    # Action interactions keep their ACTION_ID in the item column (as PutActionInteractions does).
    return (row.get("USER_ID"), row.get("ITEM_ID") or row["ACTION_ID"], None, float(row["TIMESTAMP"]),
            row.get("EVENT_TYPE"),
            row.get("EVENT_VALUE"), None, row.get("IMPRESSION"), row.get("RECOMMENDATION_ID"),
            orjson.dumps(extra).decode() if extra else None, source)


def _batches(rows: Iterator, size: int) -> Iterator[list]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_dataset(store: Store, objects: ObjectStore, job_arn: str) -> None:
    """Load the job's CSV files into its dataset; FULL replaces the bulk data, INCREMENTAL adds to it."""
    job = store.get_resource(job_arn)
    dataset = store.get_resource(job.doc["datasetArn"])
    if dataset is None:
        raise ImportFailed(f"Dataset {job.doc['datasetArn']} no longer exists")
    schema = dataset_schema(store, dataset)
    dataset_type = dataset.doc["datasetType"]
    files = objects.list(job.doc["dataSource"]["dataLocation"])
    if not files:
        raise ImportFailed(f"No input files at {job.doc['dataSource']['dataLocation']}")
    texts = [(url, _text(objects, url)) for url in files]
    full = job.doc.get("importMode", "FULL") == "FULL"
    rows = (row for url, text in texts for row in _rows(schema, url.rsplit("/", 1)[-1], text))
    if dataset_type in ("INTERACTIONS", "ACTION_INTERACTIONS"):
        metrics = _attribution_report(store, dataset, job.doc) if dataset_type == "INTERACTIONS" else None
        _import_interactions(store, dataset.arn, job_arn, metrics.watch(rows) if metrics else rows, full)
        if metrics:
            report = metrics.report()
            attribution.write_report(objects, attribution.group_attribution(store, dataset.parent_arn),
                                     job.doc.get("importMode", "FULL"), report)
    else:
        _import_records(store, dataset.arn, job_arn, schema, rows, full)


def _attribution_report(store: Store, dataset: Any, job: dict[str, Any]) -> attribution.ImportCollector | None:
    """A collector for the import's metric report, when the job publishes one and the group has an attribution."""
    found = attribution.group_attribution(store, dataset.parent_arn)
    if not job.get("publishAttributionMetricsToS3") or found is None:
        return None
    items = group_dataset(store, dataset.parent_arn, "ITEMS")
    return attribution.ImportCollector(attribution.metrics_of(found),
                                       attribution.item_lookup(store, items.arn if items else None))


def _import_interactions(store: Store, dataset_arn: str, job_arn: str, rows: Iterator[dict], full: bool) -> None:
    """Stream rows in, tagged with the job's ARN; on any failure remove exactly those rows again.

    Rows are committed in batches rather than in one transaction, so PutEvents writes never wait
    behind a long import; FULL mode drops the older bulk data only once this import has succeeded.
    """
    store.delete_interactions(dataset_arn, source=job_arn)  # what an interrupted earlier attempt wrote
    try:
        written = store.bulk_insert_interactions(
            dataset_arn, _batches((_interaction(row, job_arn) for row in rows), ROWS_PER_COMMIT))
        if written < MIN_INTERACTION_RECORDS:
            raise ImportFailed(f"Import job has {written} interaction records; at least "
                               f"{MIN_INTERACTION_RECORDS} are required")
    except BaseException:
        store.delete_interactions(dataset_arn, source=job_arn)
        raise
    if full:
        store.keep_only_bulk_source(dataset_arn, job_arn)


def _import_records(store: Store, dataset_arn: str, job_arn: str, schema: DatasetSchema, rows: Iterator[dict],
                    full: bool) -> None:
    """Items/users/actions replace records by id, which cannot be undone: check every row before writing."""
    parsed = list(rows)
    if full:
        store.delete_records(dataset_arn, bulk_only=True)
    id_field = next(name for name in ("ITEM_ID", "USER_ID", "ACTION_ID") if schema.field(name))
    for batch in _batches(((row[id_field], row) for row in parsed), ROWS_PER_COMMIT):
        store.upsert_records(dataset_arn, batch, source=job_arn)


def run_import_job(settings: Settings, job_arn: str) -> None:
    """Job-process entry point: run one import job and record its outcome in the store."""
    store = Store(settings.db_path)
    try:
        store.update_resource(job_arn, status=CREATE_IN_PROGRESS)
        try:
            import_dataset(store, ObjectStore.for_settings(settings), job_arn)
        except Exception as error:  # any failure (bad data, S3 error) becomes the job's failureReason
            store.update_resource(job_arn, status=CREATE_FAILED, failureReason=failure_reason(error))
            return
        store.update_resource(job_arn, status=ACTIVE)
    finally:
        store.close()
