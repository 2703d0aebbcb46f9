"""Control plane: data deletion jobs (CreateDataDeletionJob, DescribeDataDeletionJob, ListDataDeletionJobs).

https://docs.aws.amazon.com/personalize/latest/dg/API_CreateDataDeletionJob.html
"""

from __future__ import annotations

from typing import Any

from local_personalize.control.common import ControlContext, describe, list_page, operation
from local_personalize.errors import InvalidInput, LimitExceeded
from local_personalize.objects import ObjectStore

# Data deletion job statuses: PENDING > IN_PROGRESS > COMPLETED or FAILED (API_CreateDataDeletionJob).
PENDING, IN_PROGRESS, COMPLETED, FAILED = "PENDING", "IN_PROGRESS", "COMPLETED", "FAILED"
DELETION_JOB_KEYS = ("dataDeletionJobArn", "datasetGroupArn", "jobName", "status", "creationDateTime",
                     "lastUpdatedDateTime", "failureReason")
# "You can have a maximum of 5 deletion jobs with a PENDING status per dataset group" (delete-records.html).
MAX_PENDING_PER_GROUP = 5


@operation("CreateDataDeletionJob")
def create_data_deletion_job(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    group = ctx.get(body["datasetGroupArn"], "dataset-group", "dataset group")
    location = (body.get("dataSource") or {}).get("dataLocation")
    if not location:
        raise InvalidInput("dataSource.dataLocation is required")
    ObjectStore.for_settings(ctx.settings).check(location)
    waiting = [job for job in ctx.store.list_resources("data-deletion-job", group.arn)
               if job.status in (PENDING, IN_PROGRESS)]
    if len(waiting) >= MAX_PENDING_PER_GROUP:
        raise LimitExceeded(f"More than {MAX_PENDING_PER_GROUP} data deletion jobs are PENDING for {group.arn}")
    arn = ctx.arn(f"data-deletion-job/{body['jobName']}")
    doc = {"jobName": body["jobName"], "dataDeletionJobArn": arn, "datasetGroupArn": group.arn,
           "dataSource": {"dataLocation": location}, "roleArn": body["roleArn"], "_tags": body.get("tags") or []}
    ctx.create(arn, "data-deletion-job", "Data deletion job", group.arn, doc, status=PENDING)
    ctx.defer("data-deletion-job", arn)
    return {"dataDeletionJobArn": arn}


@operation("DescribeDataDeletionJob")
def describe_data_deletion_job(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return {"dataDeletionJob": describe(ctx.get(body["dataDeletionJobArn"], "data-deletion-job", "data deletion job"))}


@operation("ListDataDeletionJobs")
def list_data_deletion_jobs(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_page(ctx, body, "data-deletion-job", "dataDeletionJobs", DELETION_JOB_KEYS,
                     body.get("datasetGroupArn"))
