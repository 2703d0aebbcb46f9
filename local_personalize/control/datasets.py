"""Control plane: datasets and dataset import jobs (docs/reference/personalize-api.md#operations, #dataset-schemas)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from local_personalize.control.common import (
    ACTIVE, CREATE_PENDING, UNFINISHED, ControlContext, describe, list_page, operation, require_active, status_of)
from local_personalize.errors import InvalidInput, LimitExceeded, ResourceInUse
from local_personalize.objects import ObjectStore
from local_personalize.schemas import DATASET_TYPES, DatasetSchema, check_for_dataset, parse_schema
from local_personalize.store import Resource

DATASET_KEYS = ("name", "datasetArn", "datasetType", "status", "creationDateTime", "lastUpdatedDateTime")
IMPORT_JOB_KEYS = ("datasetImportJobArn", "jobName", "status", "creationDateTime", "lastUpdatedDateTime",
                   "failureReason", "importMode")
# Quota: 5 dataset import jobs PENDING or IN_PROGRESS per region (docs/reference/personalize-api.md#quotas; message as
# in docs/reference/personalize-api.md#error-codes-and-statuses).
MAX_UNFINISHED_IMPORT_JOBS = 5


@operation("CreateDataset")
def create_dataset(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    dataset_type = body["datasetType"].upper()
    if dataset_type not in DATASET_TYPES:
        raise InvalidInput(f"datasetType must be one of {', '.join(DATASET_TYPES)}, not {body['datasetType']}")
    group = ctx.get(body["datasetGroupArn"], "dataset-group", "dataset group")
    require_active(group, "Dataset group")
    schema_resource = ctx.get(body["schemaArn"], "schema", "schema")
    _schema_for(schema_resource, group, dataset_type)
    arn = ctx.arn(f"dataset/{group.doc['name']}/{dataset_type}")
    doc = {"name": body["name"], "datasetArn": arn, "datasetGroupArn": group.arn, "datasetType": dataset_type,
           "schemaArn": schema_resource.arn, "_tags": body.get("tags") or []}
    if dataset_type == "ACTION_INTERACTIONS":
        # The Action interactions dataset carries its own tracking id for PutActionInteractions
        # (docs/reference/personalize-api.md#putactioninteractions).
        doc["trackingId"] = str(uuid.uuid4())
    ctx.create(arn, "dataset", "Dataset", group.arn, doc)
    return {"datasetArn": arn}


@operation("UpdateDataset")
def update_dataset(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    """Replace the dataset's schema to add fields (https://docs.aws.amazon.com/personalize/latest/dg/updating-dataset-schema.html).

    The new schema keeps every field of the current one with its types, so the data already imported stays valid.
    """
    dataset = ctx.get(body["datasetArn"], "dataset", "dataset")
    require_active(dataset, "Dataset")
    group = ctx.get(dataset.parent_arn, "dataset-group", "dataset group")
    schema_resource = ctx.get(body["schemaArn"], "schema", "schema")
    new = _schema_for(schema_resource, group, dataset.doc["datasetType"])
    current = parse_schema(ctx.get(dataset.doc["schemaArn"], "schema", "schema").doc["schema"])
    kept = {field.name: field for field in new.fields}
    for field in current.fields:
        if field.name not in kept or kept[field.name].types != field.types:
            raise InvalidInput(f"The new schema must keep field {field.name} of the current schema with its type")
    now = time.time()
    ctx.store.update_resource(dataset.arn, schemaArn=schema_resource.arn, latestDatasetUpdate={
        "schemaArn": schema_resource.arn, "status": ACTIVE, "creationDateTime": now, "lastUpdatedDateTime": now})
    return {"datasetArn": dataset.arn}


def _schema_for(schema_resource: Resource, group: Resource, dataset_type: str) -> DatasetSchema:
    if schema_resource.doc.get("domain") != group.doc.get("domain"):
        # A domain group takes schemas created for its domain, a custom group only custom schemas.
        raise InvalidInput(f"Schema {schema_resource.arn} is for domain {schema_resource.doc.get('domain') or 'none'}"
                           f", the dataset group for {group.doc.get('domain') or 'none'}")
    parsed = parse_schema(schema_resource.doc["schema"])
    check_for_dataset(parsed, dataset_type, group.doc.get("domain"))
    return parsed


@operation("DescribeDataset")
def describe_dataset(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return {"dataset": describe(ctx.get(body["datasetArn"], "dataset", "dataset"))}


@operation("ListDatasets")
def list_datasets(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_page(ctx, body, "dataset", "datasets", DATASET_KEYS, body.get("datasetGroupArn"))


@operation("DeleteDataset")
def delete_dataset(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    dataset = ctx.get(body["datasetArn"], "dataset", "dataset")
    busy = [job.arn for job in ctx.store.list_resources("dataset-import-job", dataset.arn)
            if status_of(job) in UNFINISHED]
    busy += [version.arn for version in ctx.store.list_resources("solution-version")
             if version.doc["datasetGroupArn"] == dataset.parent_arn and status_of(version) in UNFINISHED]
    if busy:
        raise ResourceInUse(f"Dataset {dataset.arn} is used by unfinished jobs: {', '.join(busy[:5])}")
    ctx.store.delete_interactions(dataset.arn)
    ctx.store.delete_records(dataset.arn)
    ctx.store.delete_resource(dataset.arn)
    return {}


@operation("CreateDatasetImportJob")
def create_dataset_import_job(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    dataset = ctx.get(body["datasetArn"], "dataset", "dataset")
    require_active(dataset, "Dataset")
    unfinished = [job for job in ctx.store.list_resources("dataset-import-job") if job.status in UNFINISHED]
    if len(unfinished) >= MAX_UNFINISHED_IMPORT_JOBS:
        raise LimitExceeded(f"More than {MAX_UNFINISHED_IMPORT_JOBS} resources with PENDING or IN_PROGRESS status")
    arn = ctx.arn(f"dataset-import-job/{body['jobName']}")
    doc = {"jobName": body["jobName"], "datasetImportJobArn": arn, "datasetArn": dataset.arn,
           "dataSource": body["dataSource"], "roleArn": body.get("roleArn"),
           "importMode": body.get("importMode") or "FULL",
           "publishAttributionMetricsToS3": bool(body.get("publishAttributionMetricsToS3", False)),
           "_tags": body.get("tags") or []}
    if not body["dataSource"].get("dataLocation"):
        raise InvalidInput("dataSource.dataLocation is required")
    ObjectStore.for_settings(ctx.settings).check(body["dataSource"]["dataLocation"])
    ctx.create(arn, "dataset-import-job", "Dataset import job", dataset.arn,
               {k: v for k, v in doc.items() if v is not None}, status=CREATE_PENDING)
    ctx.defer("import", arn)
    return {"datasetImportJobArn": arn}


@operation("DescribeDatasetImportJob")
def describe_dataset_import_job(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    job = ctx.get(body["datasetImportJobArn"], "dataset-import-job", "dataset import job")
    return {"datasetImportJob": describe(job)}


@operation("ListDatasetImportJobs")
def list_dataset_import_jobs(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_page(ctx, body, "dataset-import-job", "datasetImportJobs", IMPORT_JOB_KEYS, body.get("datasetArn"))
