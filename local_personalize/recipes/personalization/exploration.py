"""Exploration of new and little-seen items (User-Personalization's itemExplorationConfig, docs/reference/personalize-api.md#recipes).

Which items: those whose age — from CREATION_TIMESTAMP, else their first interaction, else "new" —
measured against the newest interaction in the training data is within explorationItemAgeCutOff days.
How many: floor(numResults × explorationWeight × EXPLORATION_SLOT_SHARE) slots at the end of the list
(so it stays sorted by score), filled by relevance × 1/√(1 + interactions): relevant items first,
items few users have seen boosted. Personalize explores stochastically; we stay deterministic so a
test can reason about it, and the rotation comes from observe() raising explored items' counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from local_personalize.recipes.base import SECONDS_PER_DAY, Exploration

EXPLORATION_SLOT_SHARE = 0.5  # explorationWeight 1.0 gives half the list to exploration


def exploration_slots(num_results: int, exploration: Exploration) -> int:
    return int(math.floor(num_results * exploration.weight * EXPLORATION_SLOT_SHARE))


class ItemFreshness:
    """Per item: when it appeared and how many interactions it has had (updated by fold-in)."""

    def __init__(self, first_seen: np.ndarray, interactions: np.ndarray, reference_ts: float) -> None:
        self.first_seen = np.asarray(first_seen, np.float64)  # NaN: no timestamp known → new
        self.interactions = np.asarray(interactions, np.int64).copy()
        self.reference_ts = float(reference_ts)
        self._eligible: dict[float, np.ndarray] = {}  # by age cut-off: ages do not change after training

    @classmethod
    def from_data(
        cls,
        item_ids: Sequence[str],
        item_metadata: Mapping[str, Mapping[str, Any]],
        items: np.ndarray,
        timestamps: np.ndarray,
    ) -> ItemFreshness:
        count = len(item_ids)
        first_seen = np.full(count, np.inf)
        np.minimum.at(first_seen, items, timestamps)
        first_seen[np.isinf(first_seen)] = np.nan
        for position, item_id in enumerate(item_ids):
            created = (item_metadata.get(item_id) or {}).get("CREATION_TIMESTAMP")
            if created not in (None, ""):
                try:
                    first_seen[position] = float(created)
                except (TypeError, ValueError):
                    pass  # a malformed timestamp: fall back to the first interaction
        reference = float(timestamps.max()) if len(timestamps) else 0.0
        return cls(first_seen, np.bincount(items, minlength=count), reference)

    def eligible(self, exploration: Exploration) -> np.ndarray:
        """Indices of the items young enough to explore."""
        cutoff = exploration.item_age_cutoff_days
        found = self._eligible.get(cutoff)
        if found is None:
            age_days = (self.reference_ts - self.first_seen) / SECONDS_PER_DAY
            found = np.flatnonzero(np.isnan(age_days) | (age_days <= cutoff))
            self._eligible[cutoff] = found
        return found

    def log2_coldness(self, items: np.ndarray) -> np.ndarray:
        """log2(1/√(1 + interactions)) for the given items: the exploration boost, added to log2 scores."""
        return (-0.5 * np.log2(1.0 + self.interactions[items])).astype(np.float32)
