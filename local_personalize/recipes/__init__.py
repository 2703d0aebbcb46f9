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

RECIPES: dict[str, type[Recipe]] = {}


def recipe_for_arn(recipe_arn: str) -> type[Recipe] | None:
    """The recipe behind `arn:aws:personalize:::recipe/<name>`, or None if unknown."""
    if not recipe_arn.startswith(RECIPE_ARN_PREFIX):
        return None
    return RECIPES.get(recipe_arn[len(RECIPE_ARN_PREFIX):])


__all__ = [
    "RECIPES", "Exploration", "Model", "Recipe", "RecipeType", "Recommendation", "SessionEvent",
    "TrainingConfig", "TrainingData", "TrainingError", "load_model", "recipe_for_arn",
]
