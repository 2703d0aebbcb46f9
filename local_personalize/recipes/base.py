"""The contract between the local_personalize server and its recommender algorithms.

The server builds a `TrainingData` from its store, picks a `Recipe` from `RECIPES` by name, calls
`train()` (CPU-bound, pure, no I/O: run it in a worker thread/process) and gets a `Model` that answers
GetRecommendations, GetPersonalizedRanking, batch inference and batch segment jobs. Filters
(`local_personalize.filters`) turn into a boolean mask over `Model.item_ids`, passed as `candidates`.

Fold-in: `Model.observe()` adds a PutEvents interaction for a known or new user without retraining
(what User-Personalization does, docs/reference/personalize-api.md#data-freshness). Observed events are not saved with
the model: after `load_model()` the server replays the events newer than the training cut-off.
"""

from __future__ import annotations

import enum
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

RECIPE_ARN_PREFIX = "arn:aws:personalize:::recipe/"  # service-owned ARN, docs/reference/personalize-api.md#arns
SECONDS_PER_DAY = 86_400.0


class RecipeType(enum.StrEnum):
    """Recipe use case; decides which runtime/batch operations a campaign answers (docs/reference/personalize-api.md#runtime, #batch-inference-jobs, #recipes)."""

    USER_PERSONALIZATION = "USER_PERSONALIZATION"
    RELATED_ITEMS = "RELATED_ITEMS"
    PERSONALIZED_RANKING = "PERSONALIZED_RANKING"
    POPULAR_ITEMS = "POPULAR_ITEMS"
    USER_SEGMENTATION = "USER_SEGMENTATION"
    PERSONALIZED_ACTIONS = "PERSONALIZED_ACTIONS"


class TrainingError(ValueError):
    """The data cannot train this recipe; str(error) is the solution version's failureReason."""


class Recommendation(NamedTuple):
    """One recommended item (or user, for segments); score None where Personalize sends no score."""

    item_id: str
    score: float | None
    # v2 recipes: "Exploration", "Popular item" (docs/reference/personalize-api.md#getrecommendations, spelling [U])
    reason: str | None = None


class SessionEvent(NamedTuple):
    """An interaction not in the training data (PutEvents), used to personalise at once."""

    item_id: str
    event_type: str | None = None
    timestamp: float | None = None
    event_value: float | None = None


@dataclass(frozen=True)
class Exploration:
    """Campaign itemExplorationConfig (docs/reference/personalize-api.md#operations notes, docs/reference/personalize-api.md#recipes): strings on the wire, parsed here."""

    weight: float = 0.3  # explorationWeight default, docs/reference/personalize-api.md#recipes
    item_age_cutoff_days: float = 30.0  # explorationItemAgeCutOff default, docs/reference/personalize-api.md#recipes

    @classmethod
    def from_config(cls, config: Mapping[str, str] | None) -> Exploration:
        """Parse `{"explorationWeight": "0.3", "explorationItemAgeCutOff": "30"}`; bad values raise ValueError."""
        config = config or {}
        weight = float(config.get("explorationWeight", cls.weight))
        cutoff = float(config.get("explorationItemAgeCutOff", cls.item_age_cutoff_days))
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"explorationWeight must be between 0 and 1, got {weight}")
        if not cutoff > 0.0:
            raise ValueError(f"explorationItemAgeCutOff must be a positive number of days, got {cutoff}")
        return cls(weight, cutoff)


NO_EXPLORATION = Exploration(weight=0.0)


@dataclass(frozen=True)
class EventParameters:
    """One solutionConfig.eventsConfig.eventParametersList entry (docs/reference/personalize-api.md#field-constraints): which events train, how much."""

    event_type: str
    event_value_threshold: float | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class TrainingConfig:
    """What a solution says about training: hyperparameters and event selection (docs/reference/personalize-api.md#recipes last lines)."""

    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    event_type: str | None = None  # CreateSolution.eventType: train on this event type only
    event_value_threshold: float | None = None  # solutionConfig.eventValueThreshold
    event_parameters: tuple[EventParameters, ...] = ()  # solutionConfig.eventsConfig

    @classmethod
    def from_solution(
        cls, event_type: str | None = None, solution_config: Mapping[str, Any] | None = None
    ) -> TrainingConfig:
        """Build from CreateSolution's `eventType` and `solutionConfig` as received on the wire."""
        config = solution_config or {}
        threshold = config.get("eventValueThreshold")
        events = (config.get("eventsConfig") or {}).get("eventParametersList") or ()
        return cls(
            # Feature-transformation parameters are hyperparameters of the same algorithm to us.
            hyperparameters={
                **(config.get("featureTransformationParameters") or {}),
                **(config.get("algorithmHyperParameters") or {}),
            },
            event_type=event_type or None,
            event_value_threshold=float(threshold) if threshold not in (None, "") else None,
            event_parameters=tuple(
                EventParameters(
                    e["eventType"],
                    float(e["eventValueThreshold"]) if e.get("eventValueThreshold") is not None else None,
                    float(e.get("weight", 1.0)),
                )
                for e in events
            ),
        )

    def float_param(self, name: str, default: float, low: float, high: float) -> float:
        """A numeric hyperparameter within [low, high]; TrainingError names the bad one."""
        raw = self.hyperparameters.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise TrainingError(f"Hyperparameter {name} must be a number, got {raw!r}") from None
        if not low <= value <= high or math.isnan(value):
            raise TrainingError(f"Hyperparameter {name} must be between {low} and {high}, got {raw}")
        return value


@dataclass
class TrainingData:
    """Interactions as parallel numpy arrays plus the catalogue; built by the server from its store.

    `item_ids` is the whole catalogue (Interactions ∪ Items datasets); items without interactions are
    legal (cold items, exploration). `user_ids` likewise (Interactions ∪ Users).
    """

    user_ids: Sequence[str]
    item_ids: Sequence[str]
    user_index: np.ndarray  # int32, one per interaction, index into user_ids
    item_index: np.ndarray  # int32, index into item_ids
    timestamp: np.ndarray  # float64 epoch seconds
    event_type: np.ndarray  # int16 codes into event_types; -1 = no EVENT_TYPE
    event_types: Sequence[str] = ()
    event_value: np.ndarray | None = None  # float32, NaN where absent; None = no EVENT_VALUE column
    item_metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # by item id
    user_metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # by user id
    item_text_fields: Sequence[str] = ()  # Items schema fields marked "textual": true (free text)

    def __post_init__(self) -> None:
        self.user_index = np.asarray(self.user_index, dtype=np.int32)
        self.item_index = np.asarray(self.item_index, dtype=np.int32)
        self.timestamp = np.asarray(self.timestamp, dtype=np.float64)
        self.event_type = np.asarray(self.event_type, dtype=np.int16)
        n = len(self.user_index)
        if self.event_value is None:
            self.event_value = np.full(n, np.nan, dtype=np.float32)
        self.event_value = np.asarray(self.event_value, dtype=np.float32)
        for name in ("item_index", "timestamp", "event_type", "event_value"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"TrainingData.{name} has {len(getattr(self, name))} rows, expected {n}")
        if n and (self.user_index.max() >= len(self.user_ids) or self.item_index.max() >= len(self.item_ids)):
            raise ValueError("TrainingData indices point past user_ids/item_ids")

    @property
    def num_interactions(self) -> int:
        return len(self.user_index)

    @classmethod
    def from_rows(
        cls,
        interactions: Iterable[Mapping[str, Any]],
        items: Iterable[Mapping[str, Any]] = (),
        users: Iterable[Mapping[str, Any]] = (),
    ) -> TrainingData:
        """Build from dataset rows keyed like the schemas: USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE?, EVENT_VALUE?."""
        user_pos: dict[str, int] = {}
        item_pos: dict[str, int] = {}
        type_pos: dict[str, int] = {}
        rows_u, rows_i, rows_t, rows_e, rows_v = [], [], [], [], []
        for row in interactions:
            rows_u.append(user_pos.setdefault(str(row["USER_ID"]), len(user_pos)))
            rows_i.append(item_pos.setdefault(str(row["ITEM_ID"]), len(item_pos)))
            rows_t.append(float(row["TIMESTAMP"]))
            kind = row.get("EVENT_TYPE")  # CSV leaves absent optional columns empty
            rows_e.append(-1 if kind in (None, "") else type_pos.setdefault(str(kind), len(type_pos)))
            value = row.get("EVENT_VALUE")
            rows_v.append(np.nan if value in (None, "") else float(value))
        item_metadata = {str(r["ITEM_ID"]): dict(r) for r in items}
        user_metadata = {str(r["USER_ID"]): dict(r) for r in users}
        for item_id in item_metadata:
            item_pos.setdefault(item_id, len(item_pos))
        for user_id in user_metadata:
            user_pos.setdefault(user_id, len(user_pos))
        return cls(
            user_ids=list(user_pos),
            item_ids=list(item_pos),
            user_index=np.array(rows_u, dtype=np.int32),
            item_index=np.array(rows_i, dtype=np.int32),
            timestamp=np.array(rows_t, dtype=np.float64),
            event_type=np.array(rows_e, dtype=np.int16),
            event_types=list(type_pos),
            event_value=np.array(rows_v, dtype=np.float32),
            item_metadata=item_metadata,
            user_metadata=user_metadata,
        )


class Model(ABC):
    """A trained solution version. Methods not meaningful for the recipe type raise NotImplementedError.

    Every method that takes `candidates` accepts a bool array over `item_ids` (True = may be returned),
    e.g. from a filter; for `recommend_batch` it may also be 2-D, one row per requested user.
    `item_ids` only grows where a recipe takes new items from events (Trending-Now); a mask built
    before that leaves the new items out.
    """

    recipe_name: str
    recipe_type: RecipeType
    item_ids: Sequence[str]
    # False: Popularity-Count / SIMS return no `score` (docs/reference/personalize-api.md#getrecommendations)
    with_scores: ClassVar[bool] = True

    @abstractmethod
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
        """GetRecommendations: by user (personalization), by item (related items) or neither (popular)."""

    def rank(
        self,
        user_id: str,
        item_ids: Sequence[str],
        *,
        session_events: Sequence[SessionEvent] = (),
        candidates: np.ndarray | None = None,
    ) -> list[Recommendation]:
        """GetPersonalizedRanking: the input list (≤500, docs/reference/personalize-api.md#getpersonalizedranking) re-ranked; unknown items last."""
        raise NotImplementedError(f"{self.recipe_name} does not rank an input list")

    def recommend_batch(
        self,
        user_ids: Sequence[str],
        num_results: int = 25,
        *,
        candidates: np.ndarray | None = None,
        exploration: Exploration = NO_EXPLORATION,
    ) -> list[list[Recommendation]]:
        """Batch inference: one list per user, same semantics as recommend(); subclasses vectorise."""
        rows = candidates if candidates is not None and candidates.ndim == 2 else None
        return [
            self.recommend(
                user_id, None, num_results,
                candidates=rows[i] if rows is not None else candidates, exploration=exploration,
            )
            for i, user_id in enumerate(user_ids)
        ]

    def users_for_item(
        self, item_id: str, num_results: int = 25, *, candidate_users: np.ndarray | None = None
    ) -> list[Recommendation]:
        """Batch segment (Item-Affinity): users most likely to interact with the item, best first.

        Recommendation.item_id holds the user id here; `candidate_users` masks `user_ids`. Raises
        LookupError for an item the model was not trained with (an error line in the job output).
        """
        raise NotImplementedError(f"{self.recipe_name} does not build user segments")

    def observe(
        self, user_id: str, item_id: str, timestamp: float, event_type: str | None = None,
        event_value: float | None = None,
    ) -> None:
        """Fold in one new interaction (PutEvents) without retraining; a no-op for recipes that need a retrain.

        Events the solution's event selection would not train on (eventType, thresholds) are ignored.
        """

    @property
    def user_ids(self) -> Sequence[str]:
        """Users known to the model (training data plus observed users where the recipe keeps them)."""
        return ()

    def save(self, path: str) -> None:
        """Write the model to one .npz file (numpy arrays plus a JSON header; no pickle)."""
        arrays = self._arrays()
        header = json.dumps({"recipe": self.recipe_name, **self._header()})
        with open(path, "wb") as out:
            np.savez(out, __header__=np.array(header), **arrays)

    @abstractmethod
    def _arrays(self) -> dict[str, np.ndarray]:
        """The arrays that make up the model, for save()."""

    def _header(self) -> dict[str, Any]:
        """JSON-able scalars for save()."""
        return {}

    @classmethod
    @abstractmethod
    def _from_saved(cls, header: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> Model:
        """Inverse of _arrays/_header."""


class Recipe(ABC):
    """A training algorithm, registered in `local_personalize.recipes.RECIPES` by its Personalize name."""

    name: ClassVar[str]
    recipe_type: ClassVar[RecipeType]
    description: ClassVar[str]
    model_class: ClassVar[type[Model]]
    # False for Trending-Now (docs/reference/personalize-api.md#batch-inference-jobs)
    supports_batch_inference: ClassVar[bool] = True
    domain: ClassVar[str | None] = None  # ECOMMERCE / VIDEO_ON_DEMAND for recommender use cases (domain.py)

    @classmethod
    def arn(cls) -> str:
        return RECIPE_ARN_PREFIX + cls.name

    @classmethod
    @abstractmethod
    def train(cls, data: TrainingData, config: TrainingConfig | None = None) -> Model:
        """Train a model; raise TrainingError with a human-readable reason if the data cannot do."""


def load_model(path: str) -> Model:
    """Read a model written by Model.save(); the recipe name in its header picks the class."""
    from local_personalize.recipes import RECIPES

    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(str(archive["__header__"]))
        arrays = {name: archive[name] for name in archive.files if name != "__header__"}
    return RECIPES[header["recipe"]].model_class._from_saved(header, arrays)
