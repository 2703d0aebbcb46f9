"""Control plane: dataset export jobs (CreateDatasetExportJob, DescribeDatasetExportJob, ListDatasetExportJobs).

https://docs.aws.amazon.com/personalize/latest/dg/API_CreateDatasetExportJob.html; the job is exports.py.
"""

from __future__ import annotations

from typing import Any

from local_personalize.control.common import (
    CREATE_PENDING, ControlContext, describe, list_page, operation, require_active)
from local_personalize.errors import InvalidInput
from local_personalize.objects import ObjectStore

EXPORT_JOB_KEYS = ("jobName", "datasetExportJobArn", "status", "creationDateTime", "lastUpdatedDateTime",
                   "failureReason")


@operation("CreateDatasetExportJob")
def create_dataset_export_job(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    dataset = ctx.get(body["datasetArn"], "dataset", "dataset")
    require_active(dataset, "Dataset")
    path = ((body.get("jobOutput") or {}).get("s3DataDestination") or {}).get("path")
    if not path:
        raise InvalidInput("jobOutput.s3DataDestination.path is required")
    ObjectStore.for_settings(ctx.settings).check(path)
    arn = ctx.arn(f"dataset-export-job/{body['jobName']}")
    doc = {"jobName": body["jobName"], "datasetExportJobArn": arn, "datasetArn": dataset.arn,
           "ingestionMode": body.get("ingestionMode") or "PUT",  # the documented default
           "roleArn": body["roleArn"], "jobOutput": body["jobOutput"], "_tags": body.get("tags") or []}
    ctx.create(arn, "dataset-export-job", "Dataset export job", dataset.arn, doc, status=CREATE_PENDING)
    ctx.defer("dataset-export-job", arn)
    return {"datasetExportJobArn": arn}


@operation("DescribeDatasetExportJob")
def describe_dataset_export_job(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    job = ctx.get(body["datasetExportJobArn"], "dataset-export-job", "dataset export job")
    return {"datasetExportJob": describe(job)}


@operation("ListDatasetExportJobs")
def list_dataset_export_jobs(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_page(ctx, body, "dataset-export-job", "datasetExportJobs", EXPORT_JOB_KEYS, body.get("datasetArn"))
