"""Control plane: recipes, solutions, solution versions and their metrics (docs/reference/personalize-api.md#operations, #recipes)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from local_personalize.control.common import (
    ACTIVE, CREATE_PENDING, UNFINISHED, ControlContext, describe, list_page, operation, require_active,
    status_of, summarise)
from local_personalize.errors import InvalidInput, LimitExceeded, ResourceInUse, ResourceNotFound
from local_personalize.recipes import RECIPES, TrainingConfig, recipe_for_arn

SOLUTION_KEYS = ("name", "solutionArn", "status", "creationDateTime", "lastUpdatedDateTime", "recipeArn")
VERSION_KEYS = ("solutionVersionArn", "status", "trainingMode", "trainingType", "creationDateTime",
                "lastUpdatedDateTime", "failureReason")
# AutoML has one candidate worth running here; it is what AWS documents as its default choice.
AUTOML_RECIPE = "aws-user-personalization"
# performAutoTraining defaults to true with schedule rate(7 days) (docs/reference/personalize-api.md#operations notes);
# reported, never run here.
DEFAULT_AUTO_TRAINING = {"schedulingExpression": "rate(7 days)"}
# Quota: 20 solution versions PENDING or IN_PROGRESS per region (docs/reference/personalize-api.md#quotas).
MAX_UNFINISHED_VERSIONS = 20
# trainingMode UPDATE works only for these recipes (docs/reference/personalize-api.md#recipes: aws-user-personalization
# allows it).
UPDATABLE_RECIPES = frozenset({"aws-user-personalization"})
STOPPING, STOPPED = "CREATE STOPPING", "CREATE STOPPED"
FEATURE_TRANSFORMATION_ARN = "arn:aws:personalize:::feature-transformation/JSON-percentile-filtering"


def _recipe_summary(recipe: type, full: bool) -> dict[str, Any]:
    summary = {"name": recipe.name, "recipeArn": recipe.arn(), "status": ACTIVE, "creationDateTime": 0.0,
               "lastUpdatedDateTime": 0.0}
    if recipe.domain is not None:
        summary["domain"] = recipe.domain
    if full:
        summary |= {"algorithmArn": f"arn:aws:personalize:::algorithm/{recipe.name}",
                    "featureTransformationArn": FEATURE_TRANSFORMATION_ARN,
                    "description": recipe.description, "recipeType": str(recipe.recipe_type)}
    return summary


@operation("ListRecipes")
def list_recipes(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    # Without `domain` the custom recipes are listed, with it that domain's use cases (ListRecipes reference).
    domain = body.get("domain")
    return {"recipes": [_recipe_summary(recipe, False) for recipe in RECIPES.values() if recipe.domain == domain]}


@operation("DescribeRecipe")
def describe_recipe(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    recipe = recipe_for_arn(body["recipeArn"])
    if recipe is None:
        raise ResourceNotFound(f"Could not find recipe with ARN {body['recipeArn']}")
    return {"recipe": _recipe_summary(recipe, True)}


@operation("DescribeAlgorithm")
def describe_algorithm(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    """The algorithm behind each recipe (DescribeRecipe's algorithmArn): no container image, no tunable ranges."""
    prefix = "arn:aws:personalize:::algorithm/"
    name = body["algorithmArn"].removeprefix(prefix)
    recipe = RECIPES.get(name) if body["algorithmArn"].startswith(prefix) else None
    if recipe is None:
        raise ResourceNotFound(f"Could not find algorithm with ARN {body['algorithmArn']}")
    return {"algorithm": {"name": name, "algorithmArn": body["algorithmArn"],
                          "algorithmImage": {"name": f"local_personalize/{name}"}, "defaultHyperParameters": {},
                          "defaultHyperParameterRanges": {}, "trainingInputMode": "File",
                          "creationDateTime": 0.0, "lastUpdatedDateTime": 0.0}}


@operation("DescribeFeatureTransformation")
def describe_feature_transformation(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    """The one feature transformation DescribeRecipe names; it has no parameters to set."""
    if body["featureTransformationArn"] != FEATURE_TRANSFORMATION_ARN:
        raise ResourceNotFound(f"Could not find feature transformation with ARN {body['featureTransformationArn']}")
    return {"featureTransformation": {"name": FEATURE_TRANSFORMATION_ARN.rsplit("/", 1)[1],
                                      "featureTransformationArn": FEATURE_TRANSFORMATION_ARN, "defaultParameters": {},
                                      "status": ACTIVE, "creationDateTime": 0.0, "lastUpdatedDateTime": 0.0}}


@operation("CreateSolution")
def create_solution(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    group = ctx.get(body["datasetGroupArn"], "dataset-group", "dataset group")
    require_active(group, "Dataset group")
    automl = bool(body.get("performAutoML", False))
    recipe_arn = body.get("recipeArn")
    if recipe_arn is None and not automl:
        raise InvalidInput("recipeArn is required unless performAutoML is true")
    if recipe_arn is not None and recipe_for_arn(recipe_arn) is None:
        raise ResourceNotFound(f"Could not find recipe with ARN {recipe_arn}")
    if recipe_arn is not None and recipe_for_arn(recipe_arn).domain is not None:
        raise InvalidInput(f"{recipe_arn} is a domain use case: create a recommender with it, not a solution")
    config = dict(body.get("solutionConfig") or {})
    try:
        TrainingConfig.from_solution(body.get("eventType"), config)
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"Invalid solutionConfig: {error}") from None
    auto_training = body.get("performAutoTraining", True)
    if auto_training:
        config.setdefault("autoTrainingConfig", DEFAULT_AUTO_TRAINING)
    arn = ctx.arn(f"solution/{body['name']}")
    doc = {"name": body["name"], "solutionArn": arn, "performHPO": bool(body.get("performHPO", False)),
           "performAutoML": automl, "performAutoTraining": auto_training,
           "performIncrementalUpdate": bool(body.get("performIncrementalUpdate", False)),
           "recipeArn": recipe_arn or RECIPES[AUTOML_RECIPE].arn(), "datasetGroupArn": group.arn,
           "eventType": body.get("eventType"), "solutionConfig": config, "_tags": body.get("tags") or []}
    if automl:
        doc["autoMLResult"] = {"bestRecipeArn": RECIPES[AUTOML_RECIPE].arn()}
    ctx.create(arn, "solution", "Solution", group.arn, {k: v for k, v in doc.items() if v is not None})
    return {"solutionArn": arn}


@operation("DescribeSolution")
def describe_solution(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    solution = ctx.get(body["solutionArn"], "solution", "solution")
    document = describe(solution)
    versions = ctx.store.list_resources("solution-version", solution.arn)
    if versions:
        document["latestSolutionVersion"] = summarise(versions[-1], VERSION_KEYS)
    return {"solution": document}


@operation("UpdateSolution")
def update_solution(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    """Auto training on or off, its schedule and eventsConfig, for the solution versions created from now on."""
    solution = ctx.get(body["solutionArn"], "solution", "solution")
    require_active(solution, "Solution")
    update = dict(body.get("solutionUpdateConfig") or {})
    config = {**solution.doc["solutionConfig"], **update}
    try:
        TrainingConfig.from_solution(solution.doc.get("eventType"), config)
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"Invalid solutionUpdateConfig: {error}") from None
    auto_training = body.get("performAutoTraining", solution.doc["performAutoTraining"])
    if auto_training:
        config.setdefault("autoTrainingConfig", DEFAULT_AUTO_TRAINING)
        update.setdefault("autoTrainingConfig", config["autoTrainingConfig"])
    incremental = body.get("performIncrementalUpdate", solution.doc["performIncrementalUpdate"])
    now = time.time()
    ctx.store.update_resource(solution.arn, solutionConfig=config, performAutoTraining=auto_training,
                              performIncrementalUpdate=incremental, latestSolutionUpdate={
                                  "solutionUpdateConfig": update, "performAutoTraining": auto_training,
                                  "performIncrementalUpdate": incremental, "status": ACTIVE,
                                  "creationDateTime": now, "lastUpdatedDateTime": now})
    return {"solutionArn": solution.arn}


@operation("ListSolutions")
def list_solutions(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_page(ctx, body, "solution", "solutions", SOLUTION_KEYS, body.get("datasetGroupArn"))


@operation("DeleteSolution")
def delete_solution(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    solution = ctx.get(body["solutionArn"], "solution", "solution")
    campaigns = ctx.store.list_resources("campaign", solution.arn)
    if campaigns:
        raise ResourceInUse(f"Solution {solution.arn} is used by campaign {campaigns[0].arn}")
    versions = ctx.store.list_resources("solution-version", solution.arn)
    if any(status_of(version) in UNFINISHED for version in versions):
        raise ResourceInUse(f"Solution {solution.arn} has a solution version in progress")
    for version in versions:
        ctx.store.delete_resource(version.arn)
        (ctx.settings.models_dir / f"{version.doc['_modelId']}.npz").unlink(missing_ok=True)
    ctx.store.delete_resource(solution.arn)
    return {}


@operation("CreateSolutionVersion")
def create_solution_version(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    solution = ctx.get(body["solutionArn"], "solution", "solution")
    require_active(solution, "Solution")
    mode = body.get("trainingMode") or "FULL"
    recipe_name = solution.doc["recipeArn"].rsplit("/", 1)[-1]
    if mode == "AUTOTRAIN":
        raise InvalidInput("trainingMode AUTOTRAIN is reserved for automatic training")
    if mode == "UPDATE":
        if recipe_name not in UPDATABLE_RECIPES:
            raise InvalidInput(f"trainingMode UPDATE is not supported by recipe {recipe_name}")
        if not any(v.status == ACTIVE and v.doc.get("trainingMode") == "FULL"
                   for v in ctx.store.list_resources("solution-version", solution.arn)):
            raise InvalidInput("trainingMode UPDATE needs an ACTIVE solution version trained with FULL")
    unfinished = [v for v in ctx.store.list_resources("solution-version") if v.status in UNFINISHED]
    if len(unfinished) >= MAX_UNFINISHED_VERSIONS:
        raise LimitExceeded(f"More than {MAX_UNFINISHED_VERSIONS} resources with PENDING or IN_PROGRESS status")
    model_id = uuid.uuid4().hex[:8]
    arn = f"{solution.arn}/{model_id}"
    doc = {"name": body.get("name"), "solutionVersionArn": arn, "solutionArn": solution.arn,
           "performHPO": solution.doc["performHPO"], "performAutoML": solution.doc["performAutoML"],
           "performIncrementalUpdate": solution.doc["performIncrementalUpdate"],
           "recipeArn": solution.doc["recipeArn"], "eventType": solution.doc.get("eventType"),
           "datasetGroupArn": solution.doc["datasetGroupArn"], "solutionConfig": solution.doc["solutionConfig"],
           "trainingMode": mode, "trainingType": "MANUAL", "_modelId": model_id, "_tags": body.get("tags") or []}
    ctx.create(arn, "solution-version", "Solution version", solution.arn,
               {k: v for k, v in doc.items() if v is not None}, status=CREATE_PENDING)
    ctx.defer("train", arn)
    return {"solutionVersionArn": arn}


@operation("DescribeSolutionVersion")
def describe_solution_version(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    version = ctx.get(body["solutionVersionArn"], "solution-version", "solution version")
    return {"solutionVersion": describe(version)}


@operation("ListSolutionVersions")
def list_solution_versions(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_page(ctx, body, "solution-version", "solutionVersions", VERSION_KEYS, body.get("solutionArn"))


@operation("StopSolutionVersionCreation")
def stop_solution_version_creation(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    version = ctx.get(body["solutionVersionArn"], "solution-version", "solution version")
    if version.status not in UNFINISHED:
        raise ResourceInUse(f"Solution version {version.arn} is {version.status}; only unfinished ones can stop")
    # The trainer checks for STOPPING when it finishes and then drops its model (training is not preemptible).
    ctx.store.update_resource(version.arn, status=STOPPING if version.status != CREATE_PENDING else STOPPED)
    return {}


@operation("GetSolutionMetrics")
def get_solution_metrics(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    version = ctx.get(body["solutionVersionArn"], "solution-version", "solution version")
    require_active(version, "Solution version")
    return {"solutionVersionArn": version.arn, "metrics": version.doc.get("_metrics") or {}}
