"""aws-item-affinity: for an item, the users most likely to interact with it (batch segments, docs/reference/personalize-api.md#batch-segment-jobs)."""

from __future__ import annotations

from local_personalize.recipes.base import Recipe, RecipeType, TrainingConfig, TrainingData
from local_personalize.recipes.personalization import PersonalizationModel, train_personalization


class ItemAffinity(Recipe):
    name = "aws-item-affinity"
    recipe_type = RecipeType.USER_SEGMENTATION
    description = "User segments per item: who is most likely to interact with it."
    model_class = PersonalizationModel

    @classmethod
    def train(cls, data: TrainingData, config: TrainingConfig | None = None) -> PersonalizationModel:
        return train_personalization(data, config, cls.name, cls.recipe_type)
