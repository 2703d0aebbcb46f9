"""Training for the personalization family: event selection → histories → EASE or iALS → model.

Hyperparameters (solutionConfig.algorithmHyperParameters, strings). Personalize's own:
  hidden_dimension (32..256)   iALS factors; Personalize's default is 149, ours 64 (2 cores,
  docs/reference/personalize-api.md#recipes) recency_mask / apply_recency_bias ("true"/"false", default true)  weight
  recent events more
Local extensions (not Personalize hyperparameters; Amazon Personalize may reject them [U]):
  local_algorithm "auto" | "ease" | "ials"   auto = EASE up to EASE_MAX_ITEMS items, else iALS
  recency_half_life_events   events back at which an interaction counts half (default 10)
  ease_l2 (default 500), ials_iterations (12), ials_regularization (0.05), ials_alpha (10)
"""

from __future__ import annotations

import numpy as np

from local_personalize.recipes.base import RecipeType, TrainingConfig, TrainingData, TrainingError
from local_personalize.recipes.personalization.exploration import ItemFreshness
from local_personalize.recipes.personalization.history import UserHistories
from local_personalize.recipes.personalization.model import REPEAT_SHARE_TO_KEEP_SEEN, PersonalizationModel
from local_personalize.recipes.personalization.scorers import EASE_MAX_ITEMS, AlsScorer, EaseScorer, Scorer
from local_personalize.recipes.selection import EventSelector, select_interactions
from local_personalize.recipes.similar_items import cold_transfer

_TEMPERATURE_SAMPLE_USERS = 256


def train_personalization(
    data: TrainingData, config: TrainingConfig | None, recipe_name: str, recipe_type: RecipeType
) -> PersonalizationModel:
    config = config or TrainingConfig()
    params = config.hyperparameters
    recency = _flag(params.get("recency_mask", params.get("apply_recency_bias", "true")), "recency_mask")
    half_life = config.float_param("recency_half_life_events", 10.0, 1.0, 1e6) if recency else 0.0
    algorithm = params.get("local_algorithm", "auto")
    if algorithm not in ("auto", "ease", "ials"):
        raise TrainingError(f"local_algorithm must be auto, ease or ials, got {algorithm!r}")
    if algorithm == "auto":
        algorithm = "ease" if len(data.item_ids) <= EASE_MAX_ITEMS else "ials"

    selected = select_interactions(data, config)
    item_position = {item_id: i for i, item_id in enumerate(data.item_ids)}
    histories = UserHistories(
        data.user_ids, item_position, selected.indptr, selected.items, selected.weights, half_life
    )
    scorer: Scorer
    if algorithm == "ease":
        user_items = selected.user_items(weights=selected.weights)
        user_items.data = np.minimum(user_items.data, 1.0)  # EASE works on presence, not counts
        scorer = EaseScorer.train(user_items, config.float_param("ease_l2", 500.0, 0.0, 1e9))
    else:
        scorer = AlsScorer.train(
            histories.trained_matrix,
            factors=int(config.float_param("hidden_dimension", 64, 32, 256)),
            iterations=int(config.float_param("ials_iterations", 12, 1, 100)),
            regularization=config.float_param("ials_regularization", 0.05, 0.0, 1e6),
            alpha=config.float_param("ials_alpha", 10.0, 0.0, 1e6),
        )
    return PersonalizationModel(
        recipe_name=recipe_name,
        recipe_type=recipe_type,
        item_ids=data.item_ids,
        histories=histories,
        scorer=scorer,
        popularity=selected.distinct_users_per_item(),
        freshness=ItemFreshness.from_data(data.item_ids, data.item_metadata, selected.items, selected.timestamps),
        temperature=_temperature(scorer, histories),
        exclude_seen=selected.repeat_share() < REPEAT_SHARE_TO_KEEP_SEEN,
        selector=EventSelector.from_config(config),
        cold_transfer=cold_transfer(data.item_ids, data.item_metadata, data.item_text_fields,
                                    selected.distinct_users_per_item() > 0),
    )


def _flag(raw: str, name: str) -> bool:
    value = str(raw).strip().lower()
    if value not in ("true", "false"):
        raise TrainingError(f"Hyperparameter {name} must be true or false, got {raw!r}")
    return value == "true"


def _temperature(scorer: Scorer, histories: UserHistories) -> float:
    """Typical spread of a user's raw scores: makes the softmax neither flat nor one-hot."""
    active = np.flatnonzero(np.diff(histories.indptr) > 0)
    sample = np.random.default_rng(0).choice(active, min(len(active), _TEMPERATURE_SAMPLE_USERS), replace=False)
    scores = scorer.score_snapshot(np.sort(sample), histories.snapshot_rows(np.sort(sample)))
    spread = float(np.mean(np.std(scores, axis=1))) if len(sample) else 0.0
    return spread if spread > 0 else 1.0
