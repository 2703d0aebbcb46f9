"""aws-item-attribute-affinity: for item attributes (GENRE = "Comedy"), the users most drawn to such items."""

from __future__ import annotations

from local_personalize.recipes.base import Recipe, RecipeType, TrainingConfig, TrainingData
from local_personalize.recipes.personalization import PersonalizationModel, train_personalization


class ItemAttributeAffinity(Recipe):
    name = "aws-item-attribute-affinity"
    recipe_type = RecipeType.USER_SEGMENTATION
    description = "User segments per item attribute: who is most likely to interact with items that have it."
    model_class = PersonalizationModel

    @classmethod
    def train(cls, data: TrainingData, config: TrainingConfig | None = None) -> PersonalizationModel:
        return train_personalization(data, config, cls.name, cls.recipe_type)
