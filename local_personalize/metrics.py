"""Offline solution metrics exactly as GetSolutionMetrics defines them (docs/reference/personalize-api.md#solution-metrics).

Split: 10 % of the users with ≥ 2 interactions are held out; for each, the newest 10 % of their
interactions (at least one) are the ground truth and everything else trains. The older 90 % of a
held-out user's history is part of training — Personalize "feeds it in"; including it is the same
for history-based models and lets batch scoring serve the evaluation. Ground truth is the set of
distinct items in the held-out events that the solution's event selection trains on.
USER_SEGMENTATION instead holds out the newest 20 % of every user's interactions.

Choices where docs/reference/personalize-api.md#solution-metrics is silent: RELATED_ITEMS recipes are queried with the
held-out user's newest training item; `coverage` counts the distinct items recommended across held-out users' top 25.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from local_personalize.recipes.base import Recipe, RecipeType, TrainingConfig, TrainingData
from local_personalize.recipes.selection import EventSelector

TOP_K = 25
HOLDOUT_USER_SHARE = 0.1
HOLDOUT_EVENT_SHARE = 0.1
SEGMENT_HOLDOUT_EVENT_SHARE = 0.2
# hit/recall at K = the top 1 % of users (docs/reference/personalize-api.md#solution-metrics)
SEGMENT_TOP_USER_SHARE = 0.01


@dataclass
class Split:
    """Training data without the held-out events, and per held-out user the items to find."""

    train: TrainingData
    test_users: list[str]
    relevant: list[set[str]]
    query_items: list[str | None]  # newest training item per test user (RELATED_ITEMS)


def personalize_split(data: TrainingData, config: TrainingConfig | None = None, seed: int = 0) -> Split:
    """Personalize's evaluation split for non-segmentation recipes (docs/reference/personalize-api.md#solution-metrics)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(data.user_index, minlength=len(data.user_ids))
    eligible = np.flatnonzero(counts >= 2)
    held_out = np.sort(rng.choice(eligible, max(1, round(len(eligible) * HOLDOUT_USER_SHARE)), replace=False))
    is_held_out = np.zeros(len(data.user_ids), bool)
    is_held_out[held_out] = True
    target = _newest_share(data, is_held_out, HOLDOUT_EVENT_SHARE)
    train = _subset(data, ~target)
    selector = EventSelector.from_config(config or TrainingConfig())
    relevant: dict[int, set[str]] = {int(u): set() for u in held_out}
    for row in np.flatnonzero(target):
        event_type = data.event_types[data.event_type[row]] if data.event_type[row] >= 0 else None
        value = None if math.isnan(data.event_value[row]) else float(data.event_value[row])
        if selector.weight(event_type, value) is not None:
            relevant[int(data.user_index[row])].add(data.item_ids[data.item_index[row]])
    order = np.lexsort((train.timestamp, train.user_index))
    sorted_users = train.user_index[order]
    last_of_user = np.flatnonzero(np.r_[sorted_users[1:] != sorted_users[:-1], True])
    newest = dict(zip(sorted_users[last_of_user].tolist(), train.item_index[order[last_of_user]].tolist()))
    users = [u for u in held_out.tolist() if relevant[u]]
    return Split(
        train=train,
        test_users=[data.user_ids[u] for u in users],
        relevant=[relevant[u] for u in users],
        query_items=[data.item_ids[newest[u]] if u in newest else None for u in users],
    )


def _newest_share(data: TrainingData, users: np.ndarray, share: float) -> np.ndarray:
    """Mask of each selected user's newest `share` of interactions (at least one per user)."""
    order = np.lexsort((data.timestamp, data.user_index))
    sorted_users = data.user_index[order]
    counts = np.bincount(data.user_index, minlength=len(data.user_ids))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(order)) - starts[sorted_users]
    cut = counts - np.maximum(1, np.ceil(counts * share - 1e-9)).astype(np.int64)
    chosen = users[sorted_users] & (position >= cut[sorted_users])
    mask = np.zeros(len(order), bool)
    mask[order[chosen]] = True
    return mask


def _subset(data: TrainingData, keep: np.ndarray) -> TrainingData:
    return TrainingData(
        user_ids=data.user_ids, item_ids=data.item_ids,
        user_index=data.user_index[keep], item_index=data.item_index[keep],
        timestamp=data.timestamp[keep], event_type=data.event_type[keep], event_types=data.event_types,
        event_value=data.event_value[keep], item_metadata=data.item_metadata, user_metadata=data.user_metadata,
    )


def ranking_metrics(recommended: Sequence[Sequence[str]], relevant: Sequence[set[str]], catalogue_size: int) -> dict[str, float]:
    """coverage, mean_reciprocal_rank_at_25, normalized_discounted_cumulative_gain_at_5/10/25 and
    precision_at_5/10/25, averaged over users; NDCG weights position p (1-based) by 1/log(1 + p)."""
    totals = dict.fromkeys(metric_names(), 0.0)
    shown: set[str] = set()
    for items, targets in zip(recommended, relevant):
        items = list(items)[:TOP_K]
        shown.update(items)
        hits = [item in targets for item in items]
        first = next((p for p, hit in enumerate(hits, 1) if hit), None)
        totals["mean_reciprocal_rank_at_25"] += 1.0 / first if first else 0.0
        for k in (5, 10, 25):
            gain = sum(1.0 / math.log(1 + p) for p, hit in enumerate(hits[:k], 1) if hit)
            ideal = sum(1.0 / math.log(1 + p) for p in range(1, min(len(targets), k) + 1))
            totals[f"normalized_discounted_cumulative_gain_at_{k}"] += gain / ideal if ideal else 0.0
            totals[f"precision_at_{k}"] += sum(hits[:k]) / k
    users = max(len(relevant), 1)
    metrics = {name: value / users for name, value in totals.items()}
    metrics["coverage"] = len(shown) / catalogue_size if catalogue_size else 0.0
    return metrics


def metric_names() -> tuple[str, ...]:
    return (
        "coverage", "mean_reciprocal_rank_at_25",
        "normalized_discounted_cumulative_gain_at_5", "normalized_discounted_cumulative_gain_at_10",
        "normalized_discounted_cumulative_gain_at_25",
        "precision_at_5", "precision_at_10", "precision_at_25",
    )


def evaluate(recipe: type[Recipe], data: TrainingData, config: TrainingConfig | None = None, seed: int = 0) -> dict[str, float]:
    """Train `recipe` on Personalize's split of `data` and return the GetSolutionMetrics map."""
    if recipe.recipe_type is RecipeType.USER_SEGMENTATION:
        return evaluate_segments(recipe, data, config)
    split = personalize_split(data, config, seed)
    model = recipe.train(split.train, config)
    if recipe.recipe_type is RecipeType.RELATED_ITEMS:
        lists = [model.recommend(item_id=query, num_results=TOP_K) for query in split.query_items]
    else:
        lists = model.recommend_batch(split.test_users, TOP_K)
    recommended = [[r.item_id for r in recs] for recs in lists]
    return ranking_metrics(recommended, split.relevant, len(data.item_ids))


def evaluate_segments(recipe: type[Recipe], data: TrainingData, config: TrainingConfig | None = None) -> dict[str, float]:
    """hit and recall at K = top 1 % of users, averaged over items with held-out interactions (docs/reference/personalize-api.md#solution-metrics)."""
    everyone = np.ones(len(data.user_ids), bool)
    target = _newest_share(data, everyone, SEGMENT_HOLDOUT_EVENT_SHARE)
    counts = np.bincount(data.user_index, minlength=len(data.user_ids))
    target &= counts[data.user_index] >= 2  # a user's only interaction stays in training
    model = recipe.train(_subset(data, ~target), config)
    audience: dict[int, set[str]] = {}
    for row in np.flatnonzero(target):
        audience.setdefault(int(data.item_index[row]), set()).add(data.user_ids[data.user_index[row]])
    top = max(1, math.ceil(len(data.user_ids) * SEGMENT_TOP_USER_SHARE))
    hits, recalls = [], []
    for item, users in audience.items():
        try:
            found = {r.item_id for r in model.users_for_item(data.item_ids[item], top)}
        except LookupError:
            found = set()
        hits.append(1.0 if found & users else 0.0)
        recalls.append(len(found & users) / len(users))
    return {"hit": float(np.mean(hits)) if hits else 0.0, "recall": float(np.mean(recalls)) if recalls else 0.0}
