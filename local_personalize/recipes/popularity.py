"""aws-popularity-count: items ranked by how many distinct users interacted with them (docs/reference/personalize-api.md#recipes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from local_personalize.recipes.base import (
    NO_EXPLORATION,
    Exploration,
    Model,
    Recipe,
    RecipeType,
    Recommendation,
    SessionEvent,
    TrainingConfig,
    TrainingData,
)
from local_personalize.recipes.selection import select_interactions


def popularity_order(counts: np.ndarray) -> np.ndarray:
    """Item indices by descending count; ties by catalogue position so results are stable."""
    return np.lexsort((np.arange(len(counts)), -counts)).astype(np.int64)


def take_allowed(order: np.ndarray, num_results: int, allowed: np.ndarray | None) -> np.ndarray:
    """The first `num_results` entries of `order` whose mask entry is True (all when mask is None)."""
    if allowed is not None:
        order = order[allowed[order]]
    return order[:num_results]


class PopularityModel(Model):
    """The same list for everyone; no scores on the wire, no fold-in (retrain to update, docs/reference/personalize-api.md#data-freshness)."""

    recipe_name = "aws-popularity-count"
    recipe_type = RecipeType.POPULAR_ITEMS
    with_scores: ClassVar[bool] = False

    def __init__(self, item_ids: Sequence[str], counts: np.ndarray) -> None:
        self.item_ids = list(item_ids)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.order = popularity_order(self.counts)

    def recommend(
        self,
        user_id: str | None = None,
        item_id: str | None = None,
        num_results: int = 25,
        *,
        session_events: Sequence[SessionEvent] = (),
        candidates: np.ndarray | None = None,
        exploration: Exploration = NO_EXPLORATION,
    ) -> list[Recommendation]:
        chosen = take_allowed(self.order, num_results, candidates)
        return [Recommendation(self.item_ids[i], None) for i in chosen]

    def recommend_batch(
        self,
        user_ids: Sequence[str],
        num_results: int = 25,
        *,
        candidates: np.ndarray | None = None,
        exploration: Exploration = NO_EXPLORATION,
    ) -> list[list[Recommendation]]:
        if candidates is None or candidates.ndim == 1:
            same = self.recommend(num_results=num_results, candidates=candidates)
            return [list(same) for _ in user_ids]
        return [self.recommend(num_results=num_results, candidates=row) for row in candidates]

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"item_ids": np.array(self.item_ids, dtype=str), "counts": self.counts}

    @classmethod
    def _from_saved(cls, header: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> PopularityModel:
        return cls(arrays["item_ids"].tolist(), arrays["counts"])


class PopularityCount(Recipe):
    """Counts distinct users per item over the selected interactions."""

    name = "aws-popularity-count"
    recipe_type = RecipeType.POPULAR_ITEMS
    description = "Most popular items by number of distinct users; the baseline for metrics."
    model_class = PopularityModel

    @classmethod
    def train(cls, data: TrainingData, config: TrainingConfig | None = None) -> PopularityModel:
        histories = select_interactions(data, config or TrainingConfig())
        return PopularityModel(data.item_ids, histories.distinct_users_per_item())
