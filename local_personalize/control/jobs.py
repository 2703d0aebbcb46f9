"""Control plane: batch inference and batch segment jobs (docs/reference/personalize-api.md#operations, #batch-inference-jobs, #batch-segment-jobs)."""

from __future__ import annotations

from typing import Any

from local_personalize.control.common import (
    CREATE_PENDING, UNFINISHED, ControlContext, describe, list_page, operation, require_active)
from local_personalize.errors import InvalidInput, LimitExceeded
from local_personalize.objects import ObjectStore
from local_personalize.recipes import RecipeType, recipe_for_arn

INFERENCE_KEYS = ("batchInferenceJobArn", "jobName", "status", "creationDateTime", "lastUpdatedDateTime",
                  "failureReason", "solutionVersionArn", "batchInferenceJobMode")
SEGMENT_KEYS = ("batchSegmentJobArn", "jobName", "status", "creationDateTime", "lastUpdatedDateTime",
                "failureReason", "solutionVersionArn")
# numResults default 25 for both job kinds
# (docs/reference/personalize-api.md#batch-inference-jobs, #batch-segment-jobs); 500 per list as in GetRecommendations
# (docs/reference/personalize-api.md#getrecommendations); segments go up to 5 million users
# (docs/reference/personalize-api.md#quotas).
DEFAULT_RESULTS, MAX_INFERENCE_RESULTS, MAX_SEGMENT_RESULTS = 25, 500, 5_000_000
# Quota: 5 batch inference and 5 batch segment jobs PENDING or IN_PROGRESS per region
# (docs/reference/personalize-api.md#quotas).
MAX_UNFINISHED_JOBS = 5


def _create_job(ctx: ControlContext, body: dict[str, Any], kind: str, arn_key: str, segment: bool) -> str:
    version = ctx.get(body["solutionVersionArn"], "solution-version", "solution version")
    require_active(version, "Solution version")
    recipe = recipe_for_arn(version.doc["recipeArn"])
    is_segmentation = recipe is not None and recipe.recipe_type == RecipeType.USER_SEGMENTATION
    if segment and not is_segmentation:
        raise InvalidInput(f"Batch segment jobs need a USER_SEGMENTATION recipe, not {version.doc['recipeArn']}")
    if not segment and (is_segmentation or (recipe is not None and not recipe.supports_batch_inference)):
        raise InvalidInput(f"Recipe {version.doc['recipeArn']} does not support batch inference jobs")
    if body.get("batchInferenceJobMode") == "THEME_GENERATION":
        raise InvalidInput("batchInferenceJobMode THEME_GENERATION is not supported by local_personalize")
    if body.get("filterArn"):
        ctx.get(body["filterArn"], "filter", "filter")
    limit = MAX_SEGMENT_RESULTS if segment else MAX_INFERENCE_RESULTS
    num_results = body.get("numResults") or DEFAULT_RESULTS
    if not 1 <= num_results <= limit:
        raise InvalidInput(f"numResults must be between 1 and {limit}")
    source = body["jobInput"]["s3DataSource"]["path"]
    destination = body["jobOutput"]["s3DataDestination"]["path"]
    objects = ObjectStore.for_settings(ctx.settings)
    objects.check(source)
    objects.check(destination)
    if source.rstrip("/") == destination.rstrip("/"):
        raise InvalidInput("jobOutput path must differ from jobInput path")
    if len([job for job in ctx.store.list_resources(kind) if job.status in UNFINISHED]) >= MAX_UNFINISHED_JOBS:
        raise LimitExceeded(f"More than {MAX_UNFINISHED_JOBS} resources with PENDING or IN_PROGRESS status")
    arn = ctx.arn(f"{kind}/{body['jobName']}")
    doc = {"jobName": body["jobName"], arn_key: arn, "filterArn": body.get("filterArn"),
           "solutionVersionArn": version.arn, "numResults": num_results, "jobInput": body["jobInput"],
           "jobOutput": body["jobOutput"], "roleArn": body["roleArn"], "_tags": body.get("tags") or []}
    if not segment:
        doc["batchInferenceJobConfig"] = body.get("batchInferenceJobConfig") or {}
        doc["batchInferenceJobMode"] = body.get("batchInferenceJobMode") or "BATCH_INFERENCE"
    ctx.create(arn, kind, "Batch job", version.arn, {k: v for k, v in doc.items() if v is not None},
               status=CREATE_PENDING)
    ctx.defer(kind, arn)
    return arn


@operation("CreateBatchInferenceJob")
def create_batch_inference_job(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return {"batchInferenceJobArn": _create_job(ctx, body, "batch-inference-job", "batchInferenceJobArn", False)}


@operation("DescribeBatchInferenceJob")
def describe_batch_inference_job(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    job = ctx.get(body["batchInferenceJobArn"], "batch-inference-job", "batch inference job")
    return {"batchInferenceJob": describe(job)}


@operation("ListBatchInferenceJobs")
def list_batch_inference_jobs(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_page(ctx, body, "batch-inference-job", "batchInferenceJobs", INFERENCE_KEYS,
                     body.get("solutionVersionArn"))


@operation("CreateBatchSegmentJob")
def create_batch_segment_job(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return {"batchSegmentJobArn": _create_job(ctx, body, "batch-segment-job", "batchSegmentJobArn", True)}


@operation("DescribeBatchSegmentJob")
def describe_batch_segment_job(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    job = ctx.get(body["batchSegmentJobArn"], "batch-segment-job", "batch segment job")
    return {"batchSegmentJob": describe(job)}


@operation("ListBatchSegmentJobs")
def list_batch_segment_jobs(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_page(ctx, body, "batch-segment-job", "batchSegmentJobs", SEGMENT_KEYS,
                     body.get("solutionVersionArn"))
