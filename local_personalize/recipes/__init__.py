"""The recipe registry: Personalize recipe name → Recipe class (personalize-api.md §7)."""

from local_personalize.recipes.base import (
    RECIPE_ARN_PREFIX,
    Exploration,
    Model,
    Recipe,
    RecipeType,
    Recommendation,
    SessionEvent,
    TrainingConfig,
    TrainingData,
    TrainingError,
    load_model,
)
from local_personalize.recipes.item_affinity import ItemAffinity
from local_personalize.recipes.popularity import PopularityCount
from local_personalize.recipes.ranking import PersonalizedRanking, PersonalizedRankingV2
from local_personalize.recipes.sims import Sims
from local_personalize.recipes.trending import TrendingNow
from local_personalize.recipes.user_personalization import UserPersonalization, UserPersonalizationV2

RECIPES: dict[str, type[Recipe]] = {
    recipe.name: recipe
    for recipe in (
        UserPersonalization, UserPersonalizationV2, PersonalizedRanking, PersonalizedRankingV2,
        Sims, PopularityCount, TrendingNow, ItemAffinity,
    )
}


def recipe_for_arn(recipe_arn: str) -> type[Recipe] | None:
    """The recipe behind `arn:aws:personalize:::recipe/<name>`, or None if unknown."""
    if not recipe_arn.startswith(RECIPE_ARN_PREFIX):
        return None
    return RECIPES.get(recipe_arn[len(RECIPE_ARN_PREFIX):])


__all__ = [
    "RECIPES", "Exploration", "Model", "Recipe", "RecipeType", "Recommendation", "SessionEvent",
    "TrainingConfig", "TrainingData", "TrainingError", "load_model", "recipe_for_arn",
]
