"""Solution versions: build TrainingData from the store, train the recipe, save the model, compute metrics.

Runs in a job process. The model file is `<data>/models/<version id>.npz`; the store keeps the sequence
number of the newest interaction trained on, so the server can replay later PutEvents into the loaded
model (docs/reference/personalize-api.md#data-freshness).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

from local_personalize import context
from local_personalize.control.common import ACTIVE, CREATE_FAILED, CREATE_IN_PROGRESS
from local_personalize.ingest import group_dataset
from local_personalize.recipes import RecipeType, TrainingConfig, TrainingData, TrainingError, recipe_for_arn
from local_personalize.settings import Settings
from local_personalize.schemas import parse_schema
from local_personalize.store import Resource, Store, gc_paused

logger = logging.getLogger(__name__)
STOPPING, STOPPED = "CREATE STOPPING", "CREATE STOPPED"


def _factorize(values: tuple, positions: dict, reserved: int = 0) -> np.ndarray:
    """Codes of `values` in `positions`, adding unseen ones in order; the loops run in C (dict.fromkeys, map).

    `reserved` entries of `positions` (such as None → -1) do not count towards new codes.
    """
    for value in dict.fromkeys(values):
        if value not in positions:
            positions[value] = len(positions) - reserved
    return np.fromiter(map(positions.__getitem__, values), np.int32, len(values))


def build_training_data(store: Store, dataset_group_arn: str, actions: bool = False) -> tuple[TrainingData, int]:
    """The dataset group's data as TrainingData, and the interaction sequence number it reaches.

    With `actions` (aws-next-best-action) the "items" are the actions: Action interactions and the
    Actions dataset stand where Interactions and Items do otherwise.
    """
    interactions_type, items_type = ("ACTION_INTERACTIONS", "ACTIONS") if actions else ("INTERACTIONS", "ITEMS")
    interactions = group_dataset(store, dataset_group_arn, interactions_type)
    if interactions is None:
        raise TrainingError(f"Dataset group {dataset_group_arn} has no {interactions_type.title()} dataset")
    cutoff_seq = store.last_interaction_seq()
    user_pos: dict[str, int] = {}
    item_pos: dict[str, int] = {}
    type_pos: dict[str | None, int] = {None: -1}
    columns: list[list[np.ndarray]] = [[], [], [], [], []]
    # Anonymous events train under their session id, the id GetRecommendations uses for that visitor.
    with gc_paused():
        for batch in store.iter_interactions(interactions.arn, ("coalesce(user_id, session_id)", "item_id", "ts",
                                                                 "event_type", "event_value"), 500_000, cutoff_seq):
            users, items, stamps, kinds, values = zip(*batch)
            columns[0].append(_factorize(users, user_pos))
            columns[1].append(_factorize(items, item_pos))
            columns[2].append(np.array(stamps, np.float64))
            columns[3].append(_factorize(kinds, type_pos, reserved=1))
            columns[4].append(np.array(values, np.float32))  # None becomes NaN: no EVENT_VALUE
            del batch, users, items, stamps, kinds, values
    items_dataset = group_dataset(store, dataset_group_arn, items_type)
    users_dataset = group_dataset(store, dataset_group_arn, "USERS")
    item_metadata = store.records(items_dataset.arn) if items_dataset else {}
    user_metadata = store.records(users_dataset.arn) if users_dataset else {}
    for item_id in item_metadata:
        item_pos.setdefault(item_id, len(item_pos))
    for user_id in user_metadata:
        user_pos.setdefault(user_id, len(user_pos))
    del type_pos[None]
    user_index, item_index, timestamp, event_type, event_value = (
        np.concatenate(parts) if parts else np.zeros(0) for parts in columns)
    data = TrainingData(
        user_ids=list(user_pos), item_ids=list(item_pos), user_index=user_index, item_index=item_index,
        timestamp=timestamp, event_type=event_type, event_types=list(type_pos), event_value=event_value,
        item_metadata=item_metadata, user_metadata=user_metadata,
        item_text_fields=_textual_fields(store, items_dataset))
    return data, cutoff_seq


def _textual_fields(store: Store, items_dataset: Resource | None) -> list[str]:
    """The Items schema's free-text fields, which recipes read as text rather than categories."""
    schema = store.get_resource(items_dataset.doc["schemaArn"]) if items_dataset is not None else None
    if schema is None:
        return []
    return [field.name for field in parse_schema(schema.doc["schema"]).fields if field.textual]


def _learn_context(store: Store, settings: Settings, doc: dict[str, Any], item_ids: list[str], cutoff_seq: int) -> None:
    """Context lifts (context.py) for the Interactions schema's metadata fields, when it has any."""
    interactions = group_dataset(store, doc["datasetGroupArn"], "INTERACTIONS")
    if interactions is None:  # a next-best-action group may hold only its actions datasets
        return
    schema = store.get_resource(interactions.doc["schemaArn"])
    fields = [f.name for f in parse_schema(schema.doc["schema"]).fields
              if f.name not in context.RESERVED and "string" in f.types]
    lifts = context.learn_lifts(store, interactions.arn, item_ids, fields, cutoff_seq) if fields else {}
    if lifts:
        context.save_lifts(context.context_path(settings.models_dir, doc["_modelId"]), lifts)


def _exclude_columns(data: TrainingData, training_data_config: dict[str, Any] | None) -> None:
    """A recommender's trainingDataConfig.excludedDatasetColumns: those ITEMS / USERS columns do not train."""
    excluded = (training_data_config or {}).get("excludedDatasetColumns") or {}
    for dataset_type, metadata in (("ITEMS", data.item_metadata), ("USERS", data.user_metadata)):
        columns = set(excluded.get(dataset_type) or ())
        for row in metadata.values() if columns else ():
            for column in columns & row.keys():
                del row[column]
    data.item_text_fields = [name for name in data.item_text_fields if name not in (excluded.get("ITEMS") or ())]


def solution_metrics(recipe: type, data: TrainingData, config: TrainingConfig) -> dict[str, float]:
    """GetSolutionMetrics on Personalize's holdout split (docs/reference/personalize-api.md#solution-metrics), from the recipes engineer's metrics module."""
    from local_personalize import metrics

    return {name: float(value) for name, value in metrics.evaluate(recipe, data, config).items()}


def train_version(store: Store, settings: Settings, version_arn: str) -> dict[str, Any]:
    """Train one solution version; returns the document changes that make it ACTIVE."""
    version = store.get_resource(version_arn)
    recipe = recipe_for_arn(version.doc["recipeArn"])
    if recipe is None:
        raise TrainingError(f"Unknown recipe {version.doc['recipeArn']}")
    config = TrainingConfig.from_solution(version.doc.get("eventType"), version.doc.get("solutionConfig"))
    started = time.monotonic()
    data, cutoff_seq = build_training_data(store, version.doc["datasetGroupArn"],
                                           actions=recipe.recipe_type == RecipeType.PERSONALIZED_ACTIONS)
    _exclude_columns(data, (version.doc.get("recommenderConfig") or {}).get("trainingDataConfig"))
    read_at = time.monotonic()
    model = recipe.train(data, config)
    trained_at = time.monotonic()
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    path = settings.models_dir / f"{version.doc['_modelId']}.npz"
    partial = path.with_suffix(".partial")
    model.save(str(partial))
    os.replace(partial, path)
    _learn_context(store, settings, version.doc, data.item_ids, cutoff_seq)
    metrics = solution_metrics(recipe, data, config)
    timings = {"read_secs": round(read_at - started, 2), "train_secs": round(trained_at - read_at, 2),
               "metrics_secs": round(time.monotonic() - trained_at, 2)}
    logger.info("%s: %d interactions, %s", version_arn, data.num_interactions, timings)
    return {"_cutoffSeq": cutoff_seq, "_metrics": metrics, "_timings": timings,
            "trainingHours": round((trained_at - read_at) / 3600, 6)}


def run_solution_version(settings: Settings, version_arn: str) -> None:
    """Job-process entry point: train one version (or recommender) and record its outcome."""
    store = Store(settings.db_path)
    try:
        version = store.get_resource(version_arn)
        if version is None or version.status in (STOPPING, STOPPED):
            if version is not None:
                store.update_resource(version_arn, status=STOPPED)
            return
        store.update_resource(version_arn, status=CREATE_IN_PROGRESS)
        try:
            changes = train_version(store, settings, version_arn)
        except TrainingError as error:
            store.update_resource(version_arn, status=CREATE_FAILED, failureReason=str(error))
            return
        except Exception as error:  # a crash in a recipe fails this version, not the server
            logger.exception("training %s failed", version_arn)
            store.update_resource(version_arn, status=CREATE_FAILED,
                                  failureReason=f"Training failed: {type(error).__name__}: {error}"[:1000])
            return
        if store.get_resource(version_arn).status == STOPPING:
            store.update_resource(version_arn, status=STOPPED)
            return
        # A recommender turns ACTIVE once the server has loaded its model (service.py), a version at once.
        done = CREATE_IN_PROGRESS if store.get_resource(version_arn).kind == "recommender" else ACTIVE
        store.update_resource(version_arn, status=done, _trained=True, **changes)
    finally:
        store.close()
