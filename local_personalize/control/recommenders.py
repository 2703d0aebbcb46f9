"""Control plane: recommenders of domain dataset groups (docs/reference/personalize-api.md#operations, #statuses).

A recommender trains its use case's model when created (the "train" job, as a solution version does),
then serves it like a campaign once the server has loaded it. Statuses: CREATE PENDING → CREATE
IN_PROGRESS → ACTIVE (or CREATE FAILED with the use case's data requirement as failureReason);
StopRecommender → INACTIVE; StartRecommender → START IN_PROGRESS → ACTIVE.
"""

from __future__ import annotations

import uuid
from typing import Any

from local_personalize.control.common import (
    ACTIVE, CREATE_PENDING, UNFINISHED, ControlContext, describe, list_page, operation, require_active, status_of)
from local_personalize.errors import InvalidInput, LimitExceeded, ResourceInUse, ResourceNotFound
from local_personalize.recipes import DomainRecipe, Exploration, recipe_for_arn
from local_personalize.store import Resource

RECOMMENDER_KEYS = ("name", "recommenderArn", "datasetGroupArn", "recipeArn", "recommenderConfig", "status",
                    "creationDateTime", "lastUpdatedDateTime")
INACTIVE, START_IN_PROGRESS = "INACTIVE", "START IN_PROGRESS"
# Quota: 15 recommenders per dataset group (docs/reference/personalize-api.md#quotas, current value).
MAX_RECOMMENDERS_PER_GROUP = 15
# minRecommendationRequestsPerSecond defaults to 1 (CreateRecommender API reference).
DEFAULT_MIN_RPS = 1


def _check_config(config: dict[str, Any]) -> dict[str, Any]:
    try:
        Exploration.from_config(config.get("itemExplorationConfig"))
    except ValueError as error:
        raise InvalidInput(f"Invalid recommenderConfig.itemExplorationConfig: {error}") from None
    return {"minRecommendationRequestsPerSecond": DEFAULT_MIN_RPS, **config}


def _recommender(ctx: ControlContext, arn: str) -> Resource:
    return ctx.get(arn, "recommender", "recommender")


@operation("CreateRecommender")
def create_recommender(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    group = ctx.get(body["datasetGroupArn"], "dataset-group", "dataset group")
    require_active(group, "Dataset group")
    domain = group.doc.get("domain")
    if domain is None:
        raise InvalidInput(f"Dataset group {group.arn} has no domain; recommenders need a domain dataset group")
    recipe = recipe_for_arn(body["recipeArn"])
    if recipe is None:
        raise ResourceNotFound(f"Could not find recipe with ARN {body['recipeArn']}")
    if not issubclass(recipe, DomainRecipe) or recipe.domain != domain:
        raise InvalidInput(f"Recipe {body['recipeArn']} is not a use case of the {domain} domain")
    if len(ctx.store.list_resources("recommender", group.arn)) >= MAX_RECOMMENDERS_PER_GROUP:
        raise LimitExceeded(f"Dataset group {group.arn} already has {MAX_RECOMMENDERS_PER_GROUP} recommenders")
    arn = ctx.arn(f"recommender/{body['name']}")
    doc = {"name": body["name"], "recommenderArn": arn, "datasetGroupArn": group.arn,
           "recipeArn": body["recipeArn"], "recommenderConfig": _check_config(dict(body.get("recommenderConfig") or {})),
           "_modelId": uuid.uuid4().hex[:8], "_tags": body.get("tags") or []}
    ctx.create(arn, "recommender", "Recommender", group.arn, doc, status=CREATE_PENDING)
    ctx.defer("train", arn)
    return {"recommenderArn": arn}


@operation("DescribeRecommender")
def describe_recommender(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    recommender = _recommender(ctx, body["recommenderArn"])
    document = describe(recommender)
    document.pop("trainingHours", None)  # a solution version's field, not in the Recommender shape
    if recommender.doc.get("_metrics"):
        document["modelMetrics"] = recommender.doc["_metrics"]
    return {"recommender": document}


@operation("ListRecommenders")
def list_recommenders(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_page(ctx, body, "recommender", "recommenders", RECOMMENDER_KEYS, body.get("datasetGroupArn"))


@operation("UpdateRecommender")
def update_recommender(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    recommender = _recommender(ctx, body["recommenderArn"])
    require_active(recommender, "Recommender")
    config = _check_config({**recommender.doc["recommenderConfig"], **body["recommenderConfig"]})
    updated = ctx.store.update_resource(recommender.arn, recommenderConfig=config)
    ctx.store.update_resource(recommender.arn, latestRecommenderUpdate={
        "recommenderConfig": config, "creationDateTime": updated.updated, "lastUpdatedDateTime": updated.updated,
        "status": ACTIVE})
    ctx.defer("recommender-serve", recommender.arn)  # the new config (exploration, metadata) applies at once
    return {"recommenderArn": recommender.arn}


@operation("StopRecommender")
def stop_recommender(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    recommender = _recommender(ctx, body["recommenderArn"])
    require_active(recommender, "Recommender")
    ctx.store.update_resource(recommender.arn, status=INACTIVE)
    ctx.defer("campaign-delete", recommender.arn)  # stops serving; the trained model stays for a restart
    return {"recommenderArn": recommender.arn}


@operation("StartRecommender")
def start_recommender(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    recommender = _recommender(ctx, body["recommenderArn"])
    if recommender.status != INACTIVE:
        raise ResourceInUse(f"Recommender {recommender.arn} is {status_of(recommender)}; only INACTIVE ones start")
    ctx.store.update_resource(recommender.arn, status=START_IN_PROGRESS)
    ctx.defer("recommender-serve", recommender.arn)
    return {"recommenderArn": recommender.arn}


@operation("DeleteRecommender")
def delete_recommender(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    recommender = _recommender(ctx, body["recommenderArn"])
    if status_of(recommender) in UNFINISHED:
        raise ResourceInUse(f"Recommender {recommender.arn} is still being created")
    ctx.store.delete_resource(recommender.arn)
    (ctx.settings.models_dir / f"{recommender.doc['_modelId']}.npz").unlink(missing_ok=True)
    ctx.defer("campaign-delete", recommender.arn)
    return {}
