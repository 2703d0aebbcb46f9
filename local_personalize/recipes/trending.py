"""aws-trending-now: items whose interactions grow fastest between two consecutive time windows (docs/reference/personalize-api.md#recipes)."""

from __future__ import annotations

import math
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
    TrainingError,
)
from local_personalize.recipes.popularity import popularity_order, take_allowed
from local_personalize.recipes.selection import EventSelector, select_interactions

# "Trend discovery frequency": 30 minutes, 1 hour, 3 hours (default) or 1 day
# (docs/reference/personalize-api.md#recipes). The API key that carries it is not documented [U]; we read
# `trend_discovery_frequency` from the hyperparameters.
TREND_FREQUENCIES_SECS = {
    "30 minutes": 1800.0, "1 hour": 3600.0, "3 hours": 10800.0, "1 day": 86400.0,
}
DEFAULT_FREQUENCY = "3 hours"


def parse_frequency(raw: str | None) -> float:
    """Seconds per trend window from '30 minutes' / '1 hour' / '3 hours' / '1 day' (or bare seconds)."""
    if raw is None:
        return TREND_FREQUENCIES_SECS[DEFAULT_FREQUENCY]
    text = raw.strip().lower()
    if text in TREND_FREQUENCIES_SECS:
        return TREND_FREQUENCIES_SECS[text]
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not seconds > 0:
        raise TrainingError(
            f"trend_discovery_frequency must be one of {', '.join(TREND_FREQUENCIES_SECS)}, got {raw!r}"
        )
    return seconds


class TrendingModel(Model):
    """Keeps the interaction log; observe() adds PutEvents, including new items, without retraining.

    The clock is the newest interaction seen, not the wall clock, so replayed history trends as it did.
    """

    recipe_name = "aws-trending-now"
    recipe_type = RecipeType.POPULAR_ITEMS
    with_scores: ClassVar[bool] = False

    def __init__(
        self, item_ids: Sequence[str], items: np.ndarray, timestamps: np.ndarray, window_secs: float,
        selector: EventSelector,
    ) -> None:
        self.item_ids = list(item_ids)
        self.selector = selector
        self._position = {item_id: i for i, item_id in enumerate(self.item_ids)}
        order = np.argsort(timestamps, kind="stable")
        self._items = np.asarray(items, dtype=np.int32)[order]
        self._timestamps = np.asarray(timestamps, dtype=np.float64)[order]
        self.window_secs = float(window_secs)
        self._pending: list[tuple[int, float]] = []

    def observe(
        self, user_id: str, item_id: str, timestamp: float, event_type: str | None = None,
        event_value: float | None = None,
    ) -> None:
        if self.selector.weight(event_type, event_value) is None:
            return  # an event type or value the solution does not train on
        position = self._position.get(item_id)
        # Trending-Now takes new items from events without a retrain (docs/reference/personalize-api.md#recipes)
        if position is None:
            position = len(self.item_ids)
            self.item_ids.append(item_id)
            self._position[item_id] = position
        self._pending.append((position, float(timestamp)))

    def _merge_pending(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        items = np.concatenate([self._items, np.array([p[0] for p in pending], np.int32)])
        timestamps = np.concatenate([self._timestamps, np.array([p[1] for p in pending], np.float64)])
        order = np.argsort(timestamps, kind="stable")
        self._items, self._timestamps = items[order], timestamps[order]

    def trend_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """(growth score, total count) per item. Growth = (now − previous window) / √(previous + 1):
        an increase measured in Poisson standard deviations, so 0→2 does not outrank 100→160."""
        self._merge_pending()
        count = len(self.item_ids)
        totals = np.bincount(self._items, minlength=count).astype(np.float64)
        if len(self._timestamps) == 0:
            return np.zeros(count), totals
        now = self._timestamps[-1]
        edges = np.searchsorted(self._timestamps, [now - 2 * self.window_secs, now - self.window_secs], "right")
        previous = np.bincount(self._items[edges[0] : edges[1]], minlength=count)
        current = np.bincount(self._items[edges[1] :], minlength=count)
        return (current - previous) / np.sqrt(previous + 1.0), totals

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
        growth, totals = self.trend_scores()
        allowed = _extend_mask(candidates, len(self.item_ids))
        # Trending items first; when nothing grows (e.g. no data in the last two windows) the list is
        # the popular items, as Personalize does (Trending-Now docs).
        trending = np.flatnonzero(growth > 0)
        trending = trending[np.lexsort((trending, -totals[trending], -growth[trending]))]
        rest = popularity_order(totals)
        order = np.concatenate([trending, rest[growth[rest] <= 0]])
        return [Recommendation(self.item_ids[i], None) for i in take_allowed(order, num_results, allowed)]

    def _arrays(self) -> dict[str, np.ndarray]:
        self._merge_pending()
        return {
            "item_ids": np.array(self.item_ids, dtype=str),
            "items": self._items,
            "timestamps": self._timestamps,
        }

    def _header(self) -> dict[str, Any]:
        return {"window_secs": self.window_secs, "selector": self.selector.to_json()}

    @classmethod
    def _from_saved(cls, header: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> TrendingModel:
        return cls(arrays["item_ids"].tolist(), arrays["items"], arrays["timestamps"], header["window_secs"],
                   EventSelector.from_json(header["selector"]))


def _extend_mask(candidates: np.ndarray | None, size: int) -> np.ndarray | None:
    """A filter mask built before new items arrived leaves those items out."""
    if candidates is None or len(candidates) == size:
        return candidates
    extended = np.zeros(size, dtype=bool)
    extended[: min(size, len(candidates))] = candidates[:size]
    return extended


class TrendingNow(Recipe):
    """Growth between the last two trend windows; no batch inference (docs/reference/personalize-api.md#batch-inference-jobs)."""

    name = "aws-trending-now"
    recipe_type = RecipeType.POPULAR_ITEMS
    description = "Items gaining popularity fastest over the trend discovery frequency."
    model_class = TrendingModel
    supports_batch_inference = False

    @classmethod
    def train(cls, data: TrainingData, config: TrainingConfig | None = None) -> TrendingModel:
        config = config or TrainingConfig()
        window_secs = parse_frequency(config.hyperparameters.get("trend_discovery_frequency"))
        histories = select_interactions(data, config)
        return TrendingModel(
            data.item_ids, histories.items, histories.timestamps, window_secs, EventSelector.from_config(config)
        )
