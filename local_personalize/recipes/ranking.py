"""aws-personalized-ranking and -v2: the personalization scorer applied to an input list (docs/reference/personalize-api.md#getpersonalizedranking, #recipes)."""

from __future__ import annotations

from local_personalize.recipes.base import Recipe, RecipeType, TrainingConfig, TrainingData
from local_personalize.recipes.personalization import PersonalizationModel, train_personalization


class PersonalizedRanking(Recipe):
    name = "aws-personalized-ranking"
    recipe_type = RecipeType.PERSONALIZED_RANKING
    description = "Re-ranks an input list of up to 500 items for a user; unknown items go last."
    model_class = PersonalizationModel

    @classmethod
    def train(cls, data: TrainingData, config: TrainingConfig | None = None) -> PersonalizationModel:
        return train_personalization(data, config, cls.name, cls.recipe_type)


class PersonalizedRankingV2(PersonalizedRanking):
    """As v1, but items unknown at training come back without a score (docs/reference/personalize-api.md#getpersonalizedranking)."""

    name = "aws-personalized-ranking-v2"
    description = "Personalized-Ranking v2: unknown items returned last without a score."
