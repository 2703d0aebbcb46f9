"""aws-sims: related items from co-occurrence in users' histories, discounted by popularity (docs/reference/personalize-api.md#recipes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

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
from local_personalize.recipes.popularity import popularity_order, take_allowed
from local_personalize.recipes.selection import Histories, select_interactions
from local_personalize.recipes.topk import top_k

# per item; GetRecommendations may ask for 500 (docs/reference/personalize-api.md#getrecommendations): popular items
# fill the rest
NEIGHBOURS_KEPT = 200
_QUERY_BLOCK = 1024  # query items per sparse product, bounds memory to 1024 × items floats


class SimsModel(Model):
    """Top neighbours per item (CSR) plus the popularity order used as fallback; no scores (docs/reference/personalize-api.md#getrecommendations)."""

    recipe_name = "aws-sims"
    recipe_type = RecipeType.RELATED_ITEMS
    with_scores: ClassVar[bool] = False

    def __init__(self, item_ids: Sequence[str], neighbours: sp.csr_matrix, popularity: np.ndarray) -> None:
        self.item_ids = list(item_ids)
        self._position = {item_id: i for i, item_id in enumerate(self.item_ids)}
        self.neighbours = neighbours
        self.popularity = np.asarray(popularity, dtype=np.int64)
        self._popular_order = popularity_order(self.popularity)

    def related(self, item_id: str) -> list[str]:
        """The stored neighbours of an item, best first (empty for unknown or isolated items)."""
        position = self._position.get(item_id)
        if position is None:
            return []
        start, stop = self.neighbours.indptr[position], self.neighbours.indptr[position + 1]
        return [self.item_ids[i] for i in self.neighbours.indices[start:stop]]

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
        position = self._position.get(item_id) if item_id is not None else None
        allowed = np.ones(len(self.item_ids), bool) if candidates is None else candidates.copy()
        chosen: list[int] = []
        if position is not None:
            allowed[position] = False
            start, stop = self.neighbours.indptr[position], self.neighbours.indptr[position + 1]
            chosen = take_allowed(self.neighbours.indices[start:stop], num_results, allowed).tolist()
        # unknown or sparse item: popular items fill the list (docs/reference/personalize-api.md#getrecommendations)
        if len(chosen) < num_results:
            allowed[chosen] = False
            chosen += take_allowed(self._popular_order, num_results - len(chosen), allowed).tolist()
        return [Recommendation(self.item_ids[i], None) for i in chosen]

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "item_ids": np.array(self.item_ids, dtype=str),
            "indptr": self.neighbours.indptr,
            "indices": self.neighbours.indices,
            "scores": self.neighbours.data,
            "popularity": self.popularity,
        }

    @classmethod
    def _from_saved(cls, header: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> SimsModel:
        size = len(arrays["item_ids"])
        neighbours = sp.csr_matrix((arrays["scores"], arrays["indices"], arrays["indptr"]), shape=(size, size))
        return cls(arrays["item_ids"].tolist(), neighbours, arrays["popularity"])


class Sims(Recipe):
    """score(i → j) = C_ij / n_j^β with C = distinct co-interacting users, n_j = users of j (docs/reference/personalize-api.md#recipes)."""

    name = "aws-sims"
    recipe_type = RecipeType.RELATED_ITEMS
    description = "Items frequently interacted with together, discounted by popularity."
    model_class = SimsModel

    @classmethod
    def train(cls, data: TrainingData, config: TrainingConfig | None = None) -> SimsModel:
        config = config or TrainingConfig()
        # Hyperparameters, names, defaults and ranges from the SIMS recipe (docs/reference/personalize-api.md#recipes).
        beta = config.float_param("popularity_discount_factor", 0.5, 0.0, 1.0)
        min_together = config.float_param("min_cointeraction_count", 3, 0, 10)
        user_low = config.float_param("min_user_history_length_percentile", 0.005, 0.0, 1.0)
        user_high = config.float_param("max_user_history_length_percentile", 0.995, 0.0, 1.0)
        # Personalize documents defaults 0.01 / 0.9 for these two; read as exclusions, that would drop
        # the 10 % most popular items, which SIMS visibly does not do [U]. So they apply only when set.
        item_low = config.float_param("min_item_interaction_count_percentile", 0.0, 0.0, 1.0)
        item_high = config.float_param("max_item_interaction_count_percentile", 1.0, 0.0, 1.0)

        histories = select_interactions(data, config)
        matrix = histories.user_items(binary=True)
        popularity = np.bincount(matrix.indices, minlength=histories.num_items)
        matrix = _trim(matrix, histories, (user_low, user_high), (item_low, item_high))
        neighbours = neighbour_matrix(matrix, beta, max(min_together, 1.0))
        return SimsModel(data.item_ids, neighbours, popularity)


def _trim(
    matrix: sp.csr_matrix, histories: Histories, user_range: tuple[float, float], item_range: tuple[float, float]
) -> sp.csr_matrix:
    """Leave out users with outlying history lengths (bots, one-offs) and items with outlying counts.

    Personalize names these percentile bounds without defining them further [U]; we read them as
    "ignore users / items outside these percentiles of history length / interaction count".
    """
    lengths = np.diff(matrix.indptr)
    active = lengths > 0
    if active.any():
        low, high = np.quantile(lengths[active], user_range)
        keep_users = (lengths >= low) & (lengths <= high)
        matrix = sp.diags(keep_users.astype(np.float32)) @ matrix
    counts = np.bincount(matrix.indices, minlength=matrix.shape[1])
    seen = counts > 0
    if seen.any() and item_range != (0.0, 1.0):
        low, high = np.quantile(counts[seen], item_range)
        keep_items = (counts >= low) & (counts <= high)
        matrix = matrix @ sp.diags(keep_items.astype(np.float32))
    matrix = sp.csr_matrix(matrix)
    matrix.eliminate_zeros()
    return matrix


def neighbour_matrix(matrix: sp.csr_matrix, beta: float, min_together: float) -> sp.csr_matrix:
    """Top NEIGHBOURS_KEPT related items per item, computed a block of query items at a time."""
    num_items = matrix.shape[1]
    item_users = matrix.T.tocsr()
    users_per_item = np.bincount(matrix.indices, minlength=num_items).astype(np.float32)
    discount = np.zeros(num_items, np.float32)
    has_users = users_per_item > 0
    discount[has_users] = users_per_item[has_users] ** -beta
    keep = min(NEIGHBOURS_KEPT, max(num_items - 1, 1))
    counts, columns, values = [], [], []
    for start in range(0, num_items, _QUERY_BLOCK):
        stop = min(start + _QUERY_BLOCK, num_items)
        together = (item_users[start:stop] @ matrix).toarray()  # (block, items) co-occurrence counts
        together[np.arange(stop - start), np.arange(start, stop)] = 0.0
        scores = together * discount
        scores[together < min_together] = -np.inf
        index, best = top_k(np.ascontiguousarray(scores, dtype=np.float32), keep)
        found = index >= 0  # top_k pads with -1 at the end of each row, so rows stay best-first
        counts.append(found.sum(axis=1))
        columns.append(index[found])
        values.append(best[found])
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    return sp.csr_matrix(
        (np.concatenate(values), np.concatenate(columns).astype(np.int32), indptr),
        shape=(num_items, num_items),
    )
