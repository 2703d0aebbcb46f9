"""Contextual recommendations: how interaction context (DEVICE, LOCATION, …) shifts what users pick.

Learned when a model trains, from the interactions that carried context (metadata fields of the
Interactions schema, stored in each event's properties): for field f and value v, the smoothed log-lift
    lift[f=v][i] = log( (n[v,i] + α·p[i]) / (n[v] + α) / p[i] )
with p[i] the item's share of all interactions. GetRecommendations with `context` then ranks by
log(score) + Σ lift[f=v] over a wider list than asked — the naive-Bayes combination
P(i | user, context) ∝ P(i | user) · P(i | context) / P(i). Context the training data never saw changes
nothing. Tables are saved next to the model as `<model id>.context.npz`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import orjson

from local_personalize.recipes import Recommendation
from local_personalize.store import Store

SMOOTHING = 10.0  # α pseudo-interactions pulling a rare context value towards no lift
MAX_VALUES_PER_FIELD = 1000  # table size bound: the most frequent values of a field are kept
# candidates ranked with context = WIDEN × numResults (at least 100, at most 500,
# docs/reference/personalize-api.md#getrecommendations limit)
WIDEN = 4
RESERVED = frozenset({"USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "IMPRESSION",
                      "RECOMMENDATION_ID", "EVENT_ATTRIBUTION_SOURCE"})


def context_path(models_dir: Path, model_id: str) -> Path:
    return models_dir / f"{model_id}.context.npz"


def field_key(name: str) -> str:
    """`device` / `deviceType` / `DEVICE_TYPE` → DEVICE_TYPE, as schema fields are named."""
    return name if name.isupper() else re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def learn_lifts(store: Store, dataset_arn: str, item_ids: Sequence[str], fields: Sequence[str],
                max_seq: int) -> dict[str, np.ndarray]:
    """`"FIELD=value"` → log-lift per item (float32 over `item_ids`), from events carrying that context."""
    position = {item_id: i for i, item_id in enumerate(item_ids)}
    wanted = set(fields)
    totals = np.zeros(len(item_ids), np.float64)
    counts: dict[str, dict[int, int]] = {}
    for batch in store.iter_interactions(dataset_arn, ("item_id", "properties"), 200_000, max_seq):
        for item_id, properties in batch:
            index = position.get(item_id)
            if index is None:
                continue
            totals[index] += 1
            if not properties:
                continue
            for name, value in orjson.loads(properties).items():
                if name in wanted and value is not None:
                    per_item = counts.setdefault(f"{name}={value}", {})
                    per_item[index] = per_item.get(index, 0) + 1
    if not counts or totals.sum() == 0:
        return {}
    share = (totals + 1.0) / (totals.sum() + len(item_ids))
    kept = sorted(counts, key=lambda key: -sum(counts[key].values()))
    lifts = {}
    per_field: dict[str, int] = {}
    for key in kept:
        name = key.split("=", 1)[0]
        if per_field.setdefault(name, 0) >= MAX_VALUES_PER_FIELD:
            continue
        per_field[name] += 1
        observed = np.zeros(len(item_ids), np.float64)
        observed[list(counts[key])] = list(counts[key].values())
        lifts[key] = np.log((observed + SMOOTHING * share) / (observed.sum() + SMOOTHING) / share).astype(np.float32)
    return lifts


def save_lifts(path: Path, lifts: Mapping[str, np.ndarray]) -> None:
    keys = list(lifts)
    with open(path, "wb") as out:
        np.savez(out, keys=np.array(keys, dtype=str), table=np.stack([lifts[k] for k in keys]))


def load_lifts(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as archive:
        return dict(zip(archive["keys"].tolist(), archive["table"]))


def widened(num_results: int) -> int:
    return min(500, max(100, WIDEN * num_results))


def rerank(recommendations: list[Recommendation], context: Mapping[str, str], lifts: Mapping[str, np.ndarray],
           positions: Mapping[str, int], num_results: int, with_scores: bool) -> list[Recommendation]:
    """The best `num_results` of a widened list once context lifts are added to each item's log-score."""
    tables = [lifts[key] for name, value in context.items() if (key := f"{field_key(name)}={value}") in lifts]
    if not tables or not recommendations:
        return recommendations[:num_results]
    base = np.array([math.log(max(rec.score, 1e-12)) if with_scores and rec.score is not None else -math.log1p(rank)
                     for rank, rec in enumerate(recommendations)])
    where = np.array([positions.get(rec.item_id, -1) for rec in recommendations])
    boost = np.zeros(len(recommendations))
    for table in tables:
        boost += np.where(where >= 0, table[np.maximum(where, 0)], 0.0)
    adjusted = base + boost
    order = np.argsort(-adjusted, kind="stable")[:num_results]
    if not with_scores:
        return [recommendations[i] for i in order]
    # Scores stay a distribution: the widened list's mass, shared out by the adjusted weights.
    mass = sum(rec.score or 0.0 for rec in recommendations)
    weights = np.exp(adjusted - adjusted.max())
    weights *= mass / weights.sum()
    return [recommendations[i]._replace(score=float(weights[i])) for i in order]
