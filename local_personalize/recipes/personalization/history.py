"""Per-user interaction histories: the training snapshot plus events folded in since (PutEvents)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

MAX_HISTORY = 500  # newest events per user that shape recommendations; older ones add little


class UserHistories:
    """Users' item sequences (oldest first) with per-event weights; observe() appends without retraining."""

    def __init__(
        self,
        user_ids: Sequence[str],
        item_position: dict[str, int],
        indptr: np.ndarray,
        items: np.ndarray,
        weights: np.ndarray,
        half_life_events: float,
    ) -> None:
        self.user_ids = list(user_ids)
        self.user_position = {user_id: u for u, user_id in enumerate(self.user_ids)}
        self.item_position = item_position
        self.indptr = np.asarray(indptr, np.int64)
        self.items = np.asarray(items, np.int32)
        self.weights = np.asarray(weights, np.float32)
        self.half_life_events = half_life_events
        self.observed: dict[str, list[tuple[int, float]]] = {}  # user id → [(item, event weight)]
        self.version = 0  # bumped by observe(); lets caches of per-user state notice changes
        self.trained_matrix = self._trained_matrix(len(item_position))
        # Every trained (user, item) pair, also those older than MAX_HISTORY: what "already seen" means.
        self.seen_matrix = sp.csr_matrix(
            (np.ones(len(self.items), np.float32), self.items.copy(), self.indptr.copy()),
            shape=(len(self.user_ids), len(item_position)),
        )
        self.seen_matrix.sum_duplicates()

    def trained(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        start, stop = self.indptr[user], self.indptr[user + 1]
        return self.items[start:stop], self.weights[start:stop]

    def observe(self, user_id: str, item: int, weight: float = 1.0) -> None:
        """Append an event (item index) to the user's history."""
        events = self.observed.setdefault(user_id, [])
        events.append((item, weight))
        del events[:-MAX_HISTORY]
        self.version += 1

    def is_pristine(self, user_id: str) -> bool:
        """True when the user's history is exactly the training snapshot (precomputed state is valid)."""
        return user_id in self.user_position and user_id not in self.observed

    def sequence(
        self, user_id: str | None, extra_events: Sequence[tuple[int, float]] = ()
    ) -> tuple[np.ndarray, np.ndarray]:
        """(items, event weights) oldest first: training events, observed ones, then `extra_events`
        (item index, weight) such as this request's session events. Scoring reads the newest
        MAX_HISTORY of them; exclusion of already-seen items all of them."""
        parts_items, parts_weights = [], []
        position = self.user_position.get(user_id) if user_id is not None else None
        if position is not None:
            items, weights = self.trained(position)
            parts_items.append(items)
            parts_weights.append(weights)
        extra = list(self.observed.get(user_id, ())) if user_id is not None else []
        extra += list(extra_events)
        if extra:
            parts_items.append(np.array([e[0] for e in extra], np.int32))
            parts_weights.append(np.array([e[1] for e in extra], np.float32))
        if not parts_items:
            return np.empty(0, np.int32), np.empty(0, np.float32)
        return np.concatenate(parts_items), np.concatenate(parts_weights)

    def recency_weights(self, length: int) -> np.ndarray:
        """Weight halving every half_life_events steps back from the newest event (1.0 = newest)."""
        if self.half_life_events <= 0:
            return np.ones(length, np.float32)
        return np.exp2(-np.arange(length - 1, -1, -1) / self.half_life_events).astype(np.float32)

    def weighted_row(self, items: np.ndarray, weights: np.ndarray, num_items: int) -> np.ndarray:
        """Dense per-item input vector: event weight × recency, summed over repeats."""
        row = np.zeros(num_items, np.float32)
        np.add.at(row, items, weights * self.recency_weights(len(items)))
        return row

    def _trained_matrix(self, num_items: int) -> sp.csr_matrix:
        """The training snapshot as weighted_row() would build it, for all users at once."""
        lengths = np.diff(self.indptr)
        steps_back = np.repeat(self.indptr[1:], lengths) - 1 - np.arange(len(self.items))
        decay = (
            np.ones(len(self.items), np.float32) if self.half_life_events <= 0
            else np.exp2(-steps_back / self.half_life_events).astype(np.float32)
        )
        data = np.where(steps_back < MAX_HISTORY, self.weights * decay, 0.0).astype(np.float32)
        # Copies: sum_duplicates() sorts indices in place, which would reorder the time-ordered history.
        matrix = sp.csr_matrix(
            (data, self.items.copy(), self.indptr.copy()), shape=(len(self.user_ids), num_items)
        )
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        return matrix

    def snapshot_row(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """One trained user's snapshot row as (item indices, weights): views, no sparse matrix built per request."""
        start, end = self.trained_matrix.indptr[user], self.trained_matrix.indptr[user + 1]
        return self.trained_matrix.indices[start:end], self.trained_matrix.data[start:end]

    def snapshot_rows(self, users: np.ndarray) -> sp.csr_matrix:
        """Weighted input rows of trained users as of training (batch jobs use that data, docs/reference/personalize-api.md#data-freshness)."""
        return self.trained_matrix[users]
