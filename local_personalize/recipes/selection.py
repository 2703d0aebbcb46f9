"""Which interactions train a solution, with what weight, and the minimum-data gate every recipe applies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from local_personalize.recipes.base import TrainingConfig, TrainingData, TrainingError

# Minimum-data gate for CreateSolutionVersion, docs/reference/personalize-api.md#quotas, #recipes.
MIN_INTERACTIONS = 1000
MIN_ACTIVE_USERS = 25
MIN_EVENTS_PER_ACTIVE_USER = 2


@dataclass
class Histories:
    """Selected interactions grouped by user, oldest first: a CSR layout over (user, position)."""

    num_users: int
    num_items: int
    indptr: np.ndarray  # int64, len num_users + 1
    items: np.ndarray  # int32 item index per interaction
    timestamps: np.ndarray  # float64
    weights: np.ndarray  # float32 event weight (eventsConfig), 1.0 by default

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    @property
    def users(self) -> np.ndarray:
        """User index per interaction (expanded from indptr)."""
        return np.repeat(np.arange(self.num_users, dtype=np.int32), self.lengths)

    def user_items(self, weights: np.ndarray | None = None, binary: bool = False) -> sp.csr_matrix:
        """Users × items matrix; repeated (user, item) pairs are summed (or set to 1 when binary)."""
        data = np.ones(len(self.items), np.float32) if weights is None else weights.astype(np.float32)
        # Copies: sum_duplicates() sorts indices in place and would reorder the time-ordered histories.
        matrix = sp.csr_matrix(
            (data, self.items.copy(), self.indptr.copy()), shape=(self.num_users, self.num_items),
            dtype=np.float32,
        )
        matrix.sum_duplicates()
        if binary:
            matrix.data[:] = 1.0
        return matrix

    def distinct_users_per_item(self) -> np.ndarray:
        """How many distinct users interacted with each item (Popularity-Count's score, docs/reference/personalize-api.md#recipes)."""
        return np.bincount(self.user_items(binary=True).indices, minlength=self.num_items).astype(np.int64)

    def repeat_share(self) -> float:
        """Share of interactions repeating an earlier (user, item) pair: how often users re-consume."""
        if len(self.items) == 0:
            return 0.0
        distinct = self.user_items(binary=True).nnz
        return 1.0 - distinct / len(self.items)


def select_interactions(data: TrainingData, config: TrainingConfig) -> Histories:
    """Apply eventType / eventValueThreshold / eventsConfig selection and weights, then the minimum-data gate."""
    keep = np.ones(data.num_interactions, dtype=bool)
    weights = np.ones(data.num_interactions, dtype=np.float32)
    type_codes = {name: code for code, name in enumerate(data.event_types)}

    if config.event_type is not None:
        keep &= data.event_type == type_codes.get(config.event_type, -2)
    if config.event_value_threshold is not None:
        # An event without EVENT_VALUE cannot meet a threshold; NaN >= x is False, so it is left out.
        keep &= data.event_value >= config.event_value_threshold
    if config.event_parameters:
        # Only the event types eventsConfig lists take part, each with its own threshold and weight.
        listed = np.zeros(data.num_interactions, dtype=bool)
        for params in config.event_parameters:
            of_type = data.event_type == type_codes.get(params.event_type, -2)
            if params.event_value_threshold is not None:
                of_type &= data.event_value >= params.event_value_threshold
            listed |= of_type
            weights[of_type] = params.weight
        keep &= listed & (weights > 0)

    users, items = data.user_index[keep], data.item_index[keep]
    timestamps, weights = data.timestamp[keep], weights[keep]
    _check_minimum_data(users, len(data.user_ids))

    order = np.lexsort((timestamps, users))
    counts = np.bincount(users, minlength=len(data.user_ids))
    indptr = np.zeros(len(data.user_ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Histories(
        num_users=len(data.user_ids),
        num_items=len(data.item_ids),
        indptr=indptr,
        items=items[order],
        timestamps=timestamps[order],
        weights=weights[order],
    )


def _check_minimum_data(users: np.ndarray, num_users: int) -> None:
    if len(users) < MIN_INTERACTIONS:
        raise TrainingError(
            f"There are not enough interactions to train: {len(users)} after event type and event value "
            f"selection, at least {MIN_INTERACTIONS} are required"
        )
    active = int(np.count_nonzero(np.bincount(users, minlength=num_users) >= MIN_EVENTS_PER_ACTIVE_USER))
    if active < MIN_ACTIVE_USERS:
        raise TrainingError(
            f"Dataset has fewer than {MIN_ACTIVE_USERS} users with at least {MIN_EVENTS_PER_ACTIVE_USER} "
            f"interactions each ({active} found)"
        )


def recency_weights(histories: Histories, half_life_events: float) -> np.ndarray:
    """Per-interaction weight halving every `half_life_events` steps back from each user's newest event."""
    if half_life_events <= 0:
        return np.ones(len(histories.items), np.float32)
    ends = np.repeat(histories.indptr[1:], histories.lengths)
    steps_back = ends - 1 - np.arange(len(histories.items))
    return np.exp2(-steps_back / half_life_events).astype(np.float32)


@dataclass(frozen=True)
class EventSelector:
    """The solution's event selection applied to one new event (fold-in), mirroring select_interactions."""

    event_type: str | None = None
    event_value_threshold: float | None = None
    per_type: tuple[tuple[str, float | None, float], ...] = ()  # (type, threshold, weight)

    @classmethod
    def from_config(cls, config: TrainingConfig) -> EventSelector:
        return cls(
            config.event_type,
            config.event_value_threshold,
            tuple((p.event_type, p.event_value_threshold, p.weight) for p in config.event_parameters),
        )

    def weight(self, event_type: str | None, event_value: float | None) -> float | None:
        """The event's training weight, or None when the solution does not train on such events."""
        if self.event_type is not None and event_type != self.event_type:
            return None
        if self.event_value_threshold is not None and not (
            event_value is not None and event_value >= self.event_value_threshold
        ):
            return None
        if not self.per_type:
            return 1.0
        for name, threshold, weight in self.per_type:
            if name == event_type and (threshold is None or (event_value is not None and event_value >= threshold)):
                return weight if weight > 0 else None
        return None

    def to_json(self) -> dict:
        return {"event_type": self.event_type, "threshold": self.event_value_threshold,
                "per_type": [list(p) for p in self.per_type]}

    @classmethod
    def from_json(cls, raw: dict) -> EventSelector:
        return cls(raw["event_type"], raw["threshold"], tuple(tuple(p) for p in raw["per_type"]))
