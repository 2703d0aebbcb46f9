"""aws-user-personalization and -v2: per-user recommendations that follow new events at once (docs/reference/personalize-api.md#recipes)."""

from __future__ import annotations

from local_personalize.recipes.base import Recipe, RecipeType, TrainingConfig, TrainingData
from local_personalize.recipes.personalization import PersonalizationModel, train_personalization


class UserPersonalization(Recipe):
    name = "aws-user-personalization"
    recipe_type = RecipeType.USER_PERSONALIZATION
    description = "Personalized recommendations with real-time fold-in of new events and exploration."
    model_class = PersonalizationModel

    @classmethod
    def train(cls, data: TrainingData, config: TrainingConfig | None = None) -> PersonalizationModel:
        return train_personalization(data, config, cls.name, cls.recipe_type)


class UserPersonalizationV2(UserPersonalization):
    """Same model; v2 responses mark explored items with a `reason` (docs/reference/personalize-api.md#getrecommendations)."""

    name = "aws-user-personalization-v2"
    description = "User-Personalization v2: as v1, with reasons on explored items."
