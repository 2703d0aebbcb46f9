"""Control plane: campaigns and filters (docs/reference/personalize-api.md#operations, #filters)."""

from __future__ import annotations

from typing import Any

from local_personalize.control.common import (
    ACTIVE, CREATE_PENDING, ControlContext, describe, list_page, operation, require_active)
from local_personalize.errors import InvalidInput, LimitExceeded, ResourceInUse, ResourceNotFound
from local_personalize.filters import FilterError, compile_filter
from local_personalize.recipes import Exploration, RecipeType, recipe_for_arn
from local_personalize.store import Resource

CAMPAIGN_KEYS = ("name", "campaignArn", "status", "creationDateTime", "lastUpdatedDateTime", "failureReason")
FILTER_KEYS = ("name", "filterArn", "creationDateTime", "lastUpdatedDateTime", "datasetGroupArn", "failureReason",
               "status")
# syncWithLatestSolutionVersion needs solutionVersionArn = <solutionArn>/$LATEST
# (docs/reference/personalize-api.md#operations)
LATEST = "/$LATEST"
# Quota: 10 filters per dataset group (docs/reference/personalize-api.md#quotas).
MAX_FILTERS_PER_GROUP = 10


def resolve_version(ctx: ControlContext, version_arn: str) -> Resource:
    """The ACTIVE solution version a campaign serves; `<solution>/$LATEST` is the newest ACTIVE one."""
    if version_arn.endswith(LATEST):
        solution = ctx.get(version_arn[: -len(LATEST)], "solution", "solution")
        active = [v for v in ctx.store.list_resources("solution-version", solution.arn) if v.status == ACTIVE]
        if not active:
            raise ResourceInUse(f"Solution {solution.arn} has no ACTIVE solution version")
        return active[-1]
    version = ctx.get(version_arn, "solution-version", "solution version")
    require_active(version, "Solution version")
    return version


def _check_config(version: Resource, requested_arn: str, config: dict[str, Any]) -> None:
    recipe = recipe_for_arn(version.doc["recipeArn"])
    if recipe is not None and recipe.recipe_type == RecipeType.USER_SEGMENTATION:
        raise InvalidInput(f"{recipe.name} builds user segments; use CreateBatchSegmentJob, not a campaign")
    try:
        Exploration.from_config(config.get("itemExplorationConfig"))
    except ValueError as error:
        raise InvalidInput(f"Invalid itemExplorationConfig: {error}") from None
    if config.get("syncWithLatestSolutionVersion") and not requested_arn.endswith(LATEST):
        raise InvalidInput("syncWithLatestSolutionVersion needs solutionVersionArn <solutionArn>/$LATEST")


@operation("CreateCampaign")
def create_campaign(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    version = resolve_version(ctx, body["solutionVersionArn"])
    config = dict(body.get("campaignConfig") or {})
    _check_config(version, body["solutionVersionArn"], config)
    arn = ctx.arn(f"campaign/{body['name']}")
    doc = {"name": body["name"], "campaignArn": arn, "solutionVersionArn": version.arn,
           "minProvisionedTPS": body.get("minProvisionedTPS") or 1, "campaignConfig": config,
           "_tags": body.get("tags") or []}
    ctx.create(arn, "campaign", "Campaign", version.doc["solutionArn"], doc, status=CREATE_PENDING)
    ctx.defer("campaign", arn)
    return {"campaignArn": arn}


@operation("UpdateCampaign")
def update_campaign(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    campaign = ctx.get(body["campaignArn"], "campaign", "campaign")
    require_active(campaign, "Campaign")
    pending = campaign.doc.get("latestCampaignUpdate", {}).get("status")
    if pending not in (None, ACTIVE, "CREATE FAILED"):
        raise ResourceInUse(f"Campaign {campaign.arn} is being updated")
    requested = body.get("solutionVersionArn") or campaign.doc["solutionVersionArn"]
    version = resolve_version(ctx, requested)
    if version.doc["solutionArn"] != campaign.parent_arn:
        raise InvalidInput("A campaign can only move to a version of the same solution")
    config = {**campaign.doc["campaignConfig"], **(body.get("campaignConfig") or {})}
    _check_config(version, requested, config)
    update = {"solutionVersionArn": version.arn,
              "minProvisionedTPS": body.get("minProvisionedTPS") or campaign.doc["minProvisionedTPS"],
              "campaignConfig": config, "status": CREATE_PENDING}
    resource = ctx.store.update_resource(campaign.arn, latestCampaignUpdate=update)
    ctx.store.update_resource(campaign.arn, latestCampaignUpdate={
        **update, "creationDateTime": resource.updated, "lastUpdatedDateTime": resource.updated})
    ctx.defer("campaign-update", campaign.arn)
    return {"campaignArn": campaign.arn}


@operation("DescribeCampaign")
def describe_campaign(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return {"campaign": describe(ctx.get(body["campaignArn"], "campaign", "campaign"))}


@operation("ListCampaigns")
def list_campaigns(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_page(ctx, body, "campaign", "campaigns", CAMPAIGN_KEYS, body.get("solutionArn"))


@operation("DeleteCampaign")
def delete_campaign(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    campaign = ctx.get(body["campaignArn"], "campaign", "campaign")
    ctx.store.delete_resource(campaign.arn)
    ctx.defer("campaign-delete", campaign.arn)
    return {}


@operation("CreateFilter")
def create_filter(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    group = ctx.get(body["datasetGroupArn"], "dataset-group", "dataset group")
    try:
        compile_filter(body["filterExpression"])
    except FilterError as error:
        raise InvalidInput(f"Invalid filter expression: {error}") from None
    if len(ctx.store.list_resources("filter", group.arn)) >= MAX_FILTERS_PER_GROUP:
        raise LimitExceeded(f"Dataset group {group.arn} already has {MAX_FILTERS_PER_GROUP} filters")
    arn = ctx.arn(f"filter/{body['name']}")
    doc = {"name": body["name"], "filterArn": arn, "datasetGroupArn": group.arn,
           "filterExpression": body["filterExpression"], "_tags": body.get("tags") or []}
    ctx.create(arn, "filter", "Filter", group.arn, doc)
    return {"filterArn": arn}


@operation("DescribeFilter")
def describe_filter(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return {"filter": describe(ctx.get(body["filterArn"], "filter", "filter"))}


@operation("ListFilters")
def list_filters(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    # "Filters" with a capital F is the real result key of ListFilters (docs/reference/personalize-api.md#pagination).
    return list_page(ctx, body, "filter", "Filters", FILTER_KEYS, body.get("datasetGroupArn"))


@operation("DeleteFilter")
def delete_filter(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    resource = ctx.store.get_resource(body["filterArn"])
    if resource is None or resource.kind != "filter":
        raise ResourceNotFound(f"Could not find filter with ARN {body['filterArn']}")
    ctx.store.delete_resource(resource.arn)
    return {}
