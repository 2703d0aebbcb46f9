"""The recipe registry: Personalize recipe name → Recipe class (docs/reference/personalize-api.md#recipes).

What stands behind each name (real algorithms sized for a 2-core machine):
* aws-popularity-count: distinct users per item, one list for everyone (popularity.py).
* aws-trending-now: growth between the last two trend windows, in Poisson standard deviations; takes
  new events and new items without a retrain (trending.py).
* aws-similar-items: aws-sims' co-occurrence blended with metadata cosine (TF-IDF for text), so cold
  items get neighbours (similar_items.py).
* aws-ecomm-* / aws-vod-*: the domain use cases recommenders serve, each one of these algorithms with
  its documented event selection and exclusions (domain.py).
* aws-sims: co-occurrence over distinct users, C_ij / n_j^β, top 200 neighbours per item, popular
  items as fallback (sims.py).
* aws-user-personalization(-v2), aws-personalized-ranking(-v2), aws-item-affinity,
  aws-item-attribute-affinity: one model over
  users' recency-weighted histories — EASE up to 6,000 items, iALS (`implicit`) above — with fold-in
  of new events, exploration of young items and softmax scores (personalization/).
* aws-next-best-action: the same model over users × actions, trained on TAKEN action interactions.
base.py is the contract the server codes against; selection.py the event selection and the
minimum-data gate shared by all; topk.py the batched top-k selection.
"""

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
from local_personalize.recipes.domain import DOMAIN_RECIPES, DomainRecipe
from local_personalize.recipes.item_affinity import ItemAffinity
from local_personalize.recipes.item_attribute_affinity import ItemAttributeAffinity
from local_personalize.recipes.next_best_action import NextBestAction
from local_personalize.recipes.popularity import PopularityCount
from local_personalize.recipes.ranking import PersonalizedRanking, PersonalizedRankingV2
from local_personalize.recipes.similar_items import SimilarItems
from local_personalize.recipes.sims import Sims
from local_personalize.recipes.trending import TrendingNow
from local_personalize.recipes.user_personalization import UserPersonalization, UserPersonalizationV2

RECIPES: dict[str, type[Recipe]] = {
    recipe.name: recipe
    for recipe in (
        UserPersonalization, UserPersonalizationV2, PersonalizedRanking, PersonalizedRankingV2,
        Sims, PopularityCount, TrendingNow, ItemAffinity, ItemAttributeAffinity, NextBestAction, SimilarItems,
        *DOMAIN_RECIPES,
    )
}


def recipe_for_arn(recipe_arn: str) -> type[Recipe] | None:
    """The recipe behind `arn:aws:personalize:::recipe/<name>`, or None if unknown."""
    if not recipe_arn.startswith(RECIPE_ARN_PREFIX):
        return None
    return RECIPES.get(recipe_arn[len(RECIPE_ARN_PREFIX):])


__all__ = [
    "RECIPES", "DomainRecipe", "Exploration", "Model", "Recipe", "RecipeType", "Recommendation", "SessionEvent",
    "TrainingConfig", "TrainingData", "TrainingError", "load_model", "recipe_for_arn",
]
