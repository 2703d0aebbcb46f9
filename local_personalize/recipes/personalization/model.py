"""The trained User-Personalization / Personalized-Ranking / Item-Affinity model and its serving logic.

Decisions (docs/reference/personalize-api.md leaves them open):
* Scores are a softmax over the items eligible for the request (after filters and exclusions), with a
  temperature fixed at training (the mean per-user spread of raw scores), so they sum to 1
  (docs/reference/personalize-api.md#getrecommendations).
  Internally scores are kept as s·log2(e)/T ("log2 units"), so the softmax is 2^(x − max) / Σ.
* Items the user already interacted with are left out when the training data shows little repeat
  consumption (< REPEAT_SHARE_TO_KEEP_SEEN of interactions repeat a (user, item) pair): a next-item
  model such as Personalize's learns that repeats are rare. Where repeats are common (groceries,
  music) they stay in. To exclude them always, use an Interactions EXCLUDE filter, as with Personalize.
* Unknown users without events get popular items (softmax over log popularity)
(docs/reference/personalize-api.md#getrecommendations fallbacks);
  anonymous sessions are personalised from the session's events passed as `session_events`.
* Batch jobs and user segments use the data as of training, not folded-in events
(docs/reference/personalize-api.md#data-freshness).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from local_personalize.recipes.base import (
    NO_EXPLORATION,
    Exploration,
    Model,
    RecipeType,
    Recommendation,
    SessionEvent,
)
from local_personalize.recipes.personalization.exploration import ItemFreshness, exploration_slots
from local_personalize.recipes.personalization.history import MAX_HISTORY, UserHistories
from local_personalize.recipes.personalization.scorers import SCORERS, Scorer
from local_personalize.recipes.selection import EventSelector
from local_personalize.recipes.topk import map_row_chunks, top_k

REPEAT_SHARE_TO_KEEP_SEEN = 0.2
# v2 `reason` value (docs/reference/personalize-api.md#getrecommendations; exact spelling [U])
EXPLORATION_REASON = "Exploration"


class PersonalizationModel(Model):
    """Relevance from a Scorer over a user's weighted history; fold-in through observe()."""

    def __init__(
        self,
        *,
        recipe_name: str,
        recipe_type: RecipeType,
        item_ids: Sequence[str],
        histories: UserHistories,
        scorer: Scorer,
        popularity: np.ndarray,
        freshness: ItemFreshness,
        temperature: float,
        exclude_seen: bool,
        selector: EventSelector,
        cold_transfer: sp.csr_matrix | None = None,
    ) -> None:
        self.recipe_name = recipe_name
        self.recipe_type = recipe_type
        self.item_ids = list(item_ids)
        self.item_position = histories.item_position
        self.histories = histories
        self.scorer = scorer
        self.popularity = np.asarray(popularity, np.int64)
        self.freshness = freshness
        self.temperature = float(temperature)
        self.exclude_seen = bool(exclude_seen)
        self.selector = selector
        self.version2 = recipe_name.endswith("-v2")
        self._scale = float(np.log2(np.e) / self.temperature)  # raw score → log2 units
        popular = np.log1p(self.popularity).astype(np.float32)
        self._popular_scores = popular * np.float32(np.log2(np.e) / (float(popular.std()) or 1.0))
        self._has_history = np.diff(histories.indptr) > 0
        # Cold items (no interactions) with text metadata borrow their metadata neighbours' relevance
        # (similar_items.cold_transfer); None without textual metadata.
        self.cold_transfer = cold_transfer
        self._cold_columns = np.unique(cold_transfer.indices) if cold_transfer is not None else None
        self._cold_matrix = cold_transfer.tocsc()[:, self._cold_columns] if cold_transfer is not None else None

    def _with_cold(self, scores: np.ndarray) -> np.ndarray:
        """Give cold items the weighted relevance of their metadata neighbours (rows: users)."""
        if self._cold_matrix is not None:
            scores[:, self._cold_columns] = np.asarray(scores @ self._cold_matrix, dtype=np.float32)
        return scores

    @property
    def user_ids(self) -> Sequence[str]:
        return self.histories.user_ids

    # -- fold-in ---------------------------------------------------------------------------------
    def observe(
        self, user_id: str, item_id: str, timestamp: float, event_type: str | None = None,
        event_value: float | None = None,
    ) -> None:
        item = self.item_position.get(item_id)
        weight = self.selector.weight(event_type, event_value)
        # new items wait for a retrain (docs/reference/personalize-api.md#data-freshness)
        if item is None or weight is None:
            return
        self.histories.observe(user_id, item, weight)
        self.freshness.interactions[item] += 1

    def _session(self, events: Sequence[SessionEvent]) -> list[tuple[int, float]]:
        extra = []
        for event in events:
            item = self.item_position.get(event.item_id)
            weight = self.selector.weight(event.event_type, event.event_value)
            if item is not None and weight is not None:
                extra.append((item, weight))
        return extra

    def _relevance(self, user_id: str | None, session_events: Sequence[SessionEvent]) -> tuple[np.ndarray, np.ndarray]:
        """(scores over items in log2 units, the items in the user's history)."""
        extra = self._session(session_events)
        items, weights = self.histories.sequence(user_id, extra)
        if len(items) == 0:
            return self._popular_scores.copy(), items
        if not extra and user_id is not None and self.histories.is_pristine(user_id):
            user = self.histories.user_position[user_id]
            scores = self.scorer.score_user(user, *self.histories.snapshot_row(user), self._scale)
        else:
            recent, weights = items[-MAX_HISTORY:], weights[-MAX_HISTORY:]
            weights = weights * self.histories.recency_weights(len(recent))
            scores = self.scorer.score_history(recent, weights) * np.float32(self._scale)
        return self._with_cold(np.array(scores, dtype=np.float32)[None, :])[0], items

    # -- GetRecommendations ------------------------------------------------------------------------
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
        scores, seen = self._relevance(user_id, session_events)
        seen_matrix = sp.csr_matrix(
            (np.ones(len(seen), np.float32), seen, [0, len(seen)]), shape=(1, len(self.item_ids))
        )
        return self._select(scores[None, :], seen_matrix, candidates, num_results, exploration)[0]

    def recommend_batch(
        self,
        user_ids: Sequence[str],
        num_results: int = 25,
        *,
        candidates: np.ndarray | None = None,
        exploration: Exploration = NO_EXPLORATION,
    ) -> list[list[Recommendation]]:
        positions = np.array([self.histories.user_position.get(u, -1) for u in user_ids], np.int64)
        personal = positions >= 0
        personal[personal] = self._has_history[positions[personal]]

        def work(start: int, stop: int) -> list[list[Recommendation]]:
            chunk, known = positions[start:stop], personal[start:stop]
            users = chunk[known]
            inputs = self.histories.snapshot_rows(users)
            if known.all():
                scores = np.ascontiguousarray(self.scorer.score_snapshot(users, inputs, self._scale), np.float32)
            else:
                scores = np.empty((stop - start, len(self.item_ids)), np.float32)
                if len(users):
                    scores[known] = self.scorer.score_snapshot(users, inputs, self._scale)
                scores[~known] = self._popular_scores
            scores = self._with_cold(scores)
            seen = self.histories.seen_matrix[users]
            if not known.all():  # spread the known users' rows out to their places in the chunk
                placement = sp.csr_matrix(
                    (np.ones(len(users), np.float32), (np.flatnonzero(known), np.arange(len(users)))),
                    shape=(stop - start, len(users)),
                )
                seen = placement @ seen
            rows = candidates[start:stop] if candidates is not None and candidates.ndim == 2 else candidates
            return self._select(scores, seen, rows, num_results, exploration)

        return [recs for chunk in map_row_chunks(work, len(user_ids)) for recs in chunk]

    def _select(
        self,
        scores: np.ndarray,
        seen: sp.csr_matrix,
        candidates: np.ndarray | None,
        num_results: int,
        exploration: Exploration,
    ) -> list[list[Recommendation]]:
        """Top items per row of `scores` (log2 units, modified in place), plus exploration slots."""
        if num_results <= 0:
            return [[] for _ in range(len(scores))]
        if self.exclude_seen and seen.nnz:
            rows, columns = seen.nonzero()
            scores[rows, columns] = -np.inf
        if candidates is not None:
            np.copyto(scores, -np.inf, where=~np.broadcast_to(candidates, scores.shape))
        explore_slots = exploration_slots(num_results, exploration)
        head = num_results - explore_slots  # slots for the most relevant items
        index, best = top_k(scores, num_results)  # the tail fills slots exploration cannot
        explored, explored_values = self._explore(scores, index[:, :head], explore_slots, exploration)

        # Softmax over each row, p = 2^(x − max) / Σ 2^(x − max), in place. A value below −126 would
        # make a float32 denormal (slow), which needs a user score ~87 temperatures below their best.
        row_max = np.where(np.isfinite(best[:, 0]), best[:, 0], 0.0).astype(np.float32)  # top_k's best
        np.subtract(scores, row_max[:, None], out=scores)
        np.exp2(scores, out=scores)
        totals = scores.sum(axis=1)
        totals[totals == 0] = 1.0

        def probability(values: np.ndarray) -> np.ndarray:
            return np.exp2(values - row_max[:, None]) / totals[:, None]

        chosen = probability(best)
        if explored is None:
            return _recommendation_rows(self.item_ids, index, chosen, None)
        rows = _recommendation_rows(self.item_ids, index[:, :head], chosen[:, :head], None)
        reason = EXPLORATION_REASON if self.version2 else None
        explored_p = probability(explored_values)
        for row, picks in enumerate(rows):
            tail = [(p, i, reason) for i, p in zip(explored[row].tolist(), explored_p[row].tolist()) if i >= 0]
            taken = {i for _, i, _ in tail}
            fill = [(p, i, None) for i, p in zip(index[row, head:].tolist(), chosen[row, head:].tolist())
                    if i >= 0 and i not in taken]
            tail += fill[: explore_slots - len(tail)]
            tail.sort(key=lambda entry: -entry[0])  # the whole list stays sorted by score
            picks += [Recommendation(self.item_ids[i], p, why) for p, i, why in tail]
        return rows

    def _explore(
        self, scores: np.ndarray, chosen: np.ndarray, slots: int, exploration: Exploration
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Fill `slots` per row with eligible items not yet chosen: relevance × coldness (exploration.py)."""
        if slots <= 0:
            return None, None
        eligible = self.freshness.eligible(exploration)
        if len(eligible) == 0:
            return None, None
        place = np.full(len(self.item_ids), -1, np.int64)
        place[eligible] = np.arange(len(eligible))
        value = scores[:, eligible] + self.freshness.log2_coldness(eligible)
        taken_rows, taken_columns = np.nonzero(chosen >= 0)
        taken = place[chosen[taken_rows, taken_columns]]
        value[taken_rows[taken >= 0], taken[taken >= 0]] = -np.inf
        picked, _ = top_k(np.ascontiguousarray(value), slots)
        items = np.where(picked >= 0, eligible[np.maximum(picked, 0)], -1)
        raw = np.take_along_axis(scores, np.maximum(items, 0), axis=1)
        raw[items < 0] = -np.inf
        return items, raw

    # -- GetPersonalizedRanking --------------------------------------------------------------------
    def rank(
        self,
        user_id: str,
        item_ids: Sequence[str],
        *,
        session_events: Sequence[SessionEvent] = (),
        candidates: np.ndarray | None = None,
    ) -> list[Recommendation]:
        scores, _ = self._relevance(user_id, session_events)
        known, unknown, seen_ids = [], [], set()
        for item_id in item_ids:
            if item_id in seen_ids:
                continue
            seen_ids.add(item_id)
            position = self.item_position.get(item_id)
            if position is None:
                unknown.append(item_id)
            elif candidates is None or candidates[position]:
                known.append(position)
        known_scores = scores[known].astype(np.float64)
        probabilities = np.exp2(known_scores - known_scores.max(initial=0.0)) if known else np.empty(0)
        probabilities /= probabilities.sum() or 1.0
        order = np.argsort(-probabilities, kind="stable")
        ranked = [Recommendation(self.item_ids[known[i]], float(probabilities[i])) for i in order]
        # Items unknown at training go last: v1 with score 0, v2 without a score
        # (docs/reference/personalize-api.md#getpersonalizedranking).
        return ranked + [Recommendation(item_id, None if self.version2 else 0.0) for item_id in unknown]

    # -- batch segments (Item-Affinity) -------------------------------------------------------------
    def users_for_item(
        self, item_id: str, num_results: int = 25, *, candidate_users: np.ndarray | None = None
    ) -> list[Recommendation]:
        item = self.item_position.get(item_id)
        if item is None:
            raise LookupError(f"Item {item_id} was not in the training data")
        scores = np.asarray(self.scorer.users_for_item(item, self.histories.trained_matrix), np.float32)
        # Segments are audiences to reach: users with no history, or who already have the item, are out.
        scores[~self._has_history] = -np.inf
        scores[self.histories.trained_matrix[:, item].nonzero()[0]] = -np.inf
        if candidate_users is not None:
            scores[~candidate_users] = -np.inf
        index, _ = top_k(scores[None, :], num_results)
        return [Recommendation(self.histories.user_ids[u], None) for u in index[0] if u >= 0]

    def users_for_items(
        self, items: np.ndarray, num_results: int = 25, *, candidate_users: np.ndarray | None = None
    ) -> list[Recommendation]:
        """Item-Attribute-Affinity: users by their mean affinity to the items of a bool mask over item_ids."""
        chosen = np.flatnonzero(items[: len(self.item_ids)])
        if not len(chosen):
            return []
        scores = np.zeros(len(self.histories.user_ids), dtype=np.float32)
        for item in chosen:
            scores += np.asarray(self.scorer.users_for_item(int(item), self.histories.trained_matrix), np.float32)
        scores /= len(chosen)
        # Unlike single-item segments, fans who already own some such items stay in: they are the audience.
        scores[~self._has_history] = -np.inf
        if candidate_users is not None:
            scores[~candidate_users] = -np.inf
        index, _ = top_k(scores[None, :], num_results)
        return [Recommendation(self.histories.user_ids[u], None) for u in index[0] if u >= 0]

    # -- persistence -------------------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "item_ids": np.array(self.item_ids, dtype=str),
            "user_ids": np.array(self.histories.user_ids, dtype=str),
            "history_indptr": self.histories.indptr,
            "history_items": self.histories.items,
            "history_weights": self.histories.weights,
            "popularity": self.popularity,
            "first_seen": self.freshness.first_seen,
            "interactions": self.freshness.interactions,
            **self.scorer.arrays(),
            **({"cold_data": self.cold_transfer.data, "cold_indices": self.cold_transfer.indices,
                "cold_indptr": self.cold_transfer.indptr} if self.cold_transfer is not None else {}),
        }

    def _header(self) -> dict[str, Any]:
        return {
            "recipe_type": str(self.recipe_type),
            "scorer": self.scorer.kind,
            "scorer_header": self.scorer.header(),
            "temperature": self.temperature,
            "exclude_seen": self.exclude_seen,
            "half_life_events": self.histories.half_life_events,
            "reference_ts": self.freshness.reference_ts,
            "selector": self.selector.to_json(),
        }

    @classmethod
    def _from_saved(cls, header: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> PersonalizationModel:
        item_ids = arrays["item_ids"].tolist()
        histories = UserHistories(
            arrays["user_ids"].tolist(), {item_id: i for i, item_id in enumerate(item_ids)},
            arrays["history_indptr"], arrays["history_items"], arrays["history_weights"],
            header["half_life_events"],
        )
        return cls(
            recipe_name=header["recipe"],
            recipe_type=RecipeType(header["recipe_type"]),
            item_ids=item_ids,
            histories=histories,
            scorer=SCORERS[header["scorer"]].load(header["scorer_header"], arrays),
            popularity=arrays["popularity"],
            freshness=ItemFreshness(arrays["first_seen"], arrays["interactions"], header["reference_ts"]),
            temperature=header["temperature"],
            exclude_seen=header["exclude_seen"],
            selector=EventSelector.from_json(header["selector"]),
            cold_transfer=sp.csr_matrix((arrays["cold_data"], arrays["cold_indices"], arrays["cold_indptr"]),
                                        shape=(len(item_ids), len(item_ids))) if "cold_data" in arrays else None,
        )


def _recommendation_rows(
    item_ids: Sequence[str], index: np.ndarray, probabilities: np.ndarray, reason: str | None
) -> list[list[Recommendation]]:
    """Recommendation lists from index/probability matrices (index −1 = padding, dropped)."""
    make = tuple.__new__  # a NamedTuple's own __new__ costs ~1 µs each; batch jobs build millions
    return [
        [make(Recommendation, (item_ids[i], p, reason)) for i, p in zip(items, scores) if i >= 0]
        for items, scores in zip(index.tolist(), probabilities.tolist())
    ]
