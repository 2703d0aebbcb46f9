"""Domain use cases (ECOMMERCE, VIDEO_ON_DEMAND): each recommender recipe is an existing algorithm with
the event selection, minimum data and exclusions its use case documents.

Sources: https://docs.aws.amazon.com/personalize/latest/dg/ECOMMERCE-use-cases.html and
https://docs.aws.amazon.com/personalize/latest/dg/VIDEO_ON_DEMAND-use-cases.html. Every use case
needs 1000 interactions from 25 users with 2 each (selection.py's gate) and at least 1000 events of
its required type.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from local_personalize.recipes.base import Model, Recipe, RecipeType, TrainingConfig, TrainingData, TrainingError
from local_personalize.recipes.popularity import PopularityCount, PopularityModel
from local_personalize.recipes.similar_items import SimilarItems, SimilarItemsModel
from local_personalize.recipes.sims import Sims, SimsModel
from local_personalize.recipes.trending import TrendingModel, TrendingNow
from local_personalize.recipes.user_personalization import UserPersonalization

MIN_REQUIRED_EVENTS = 1000  # "At minimum 1000 <type> events" in each use case's requirements


class DomainRecipe(Recipe):
    """A use case: `backing` trains on `required_event` events only, or on all when `trains_on_all`."""

    domain: ClassVar[str]
    backing: ClassVar[type[Recipe]]
    required_event: ClassVar[str]
    trains_on_all: ClassVar[bool] = False
    # GetRecommendations needs these (use case "GetRecommendations requirements").
    needs_user: ClassVar[bool] = False
    needs_item: ClassVar[bool] = False
    # Items the user had events of this type with are left out of their recommendations.
    excludes_event: ClassVar[str | None] = None
    # itemId may be omitted: the user's latest `excludes_event` item stands for it.
    item_from_history: ClassVar[bool] = False

    @classmethod
    def train(cls, data: TrainingData, config: TrainingConfig | None = None) -> Model:
        config = config or TrainingConfig()
        code = list(data.event_types).index(cls.required_event) if cls.required_event in data.event_types else -2
        found = int(np.count_nonzero(data.event_type == code))
        if found < MIN_REQUIRED_EVENTS:
            raise TrainingError(f"{cls.name} needs at least {MIN_REQUIRED_EVENTS} {cls.required_event} events "
                                f"in the Item interactions dataset; found {found}")
        selection = TrainingConfig(config.hyperparameters, None if cls.trains_on_all else cls.required_event)
        return cls.backing.train(data, selection)


def _use_case(name: str, domain: str, backing: type[Recipe], model: type[Model], event: str, description: str,
              **traits: object) -> type[DomainRecipe]:
    fields = {"name": name, "domain": domain, "backing": backing, "required_event": event,
              "description": description, "model_class": model, "recipe_type": backing.recipe_type,
              "supports_batch_inference": False, **traits}
    return type(name.replace("-", "_"), (DomainRecipe,), fields)


_PERSONALIZATION_MODEL = UserPersonalization.model_class
DOMAIN_RECIPES: tuple[type[DomainRecipe], ...] = (
    _use_case("aws-ecomm-popular-items-by-views", "ECOMMERCE", PopularityCount, PopularityModel, "View",
              "Most viewed: items by how many customers viewed them.", needs_user=True),
    _use_case("aws-ecomm-popular-items-by-purchases", "ECOMMERCE", PopularityCount, PopularityModel, "Purchase",
              "Best sellers: items by how many customers bought them.", needs_user=True),
    _use_case("aws-ecomm-frequently-bought-together", "ECOMMERCE", Sims, SimsModel, "Purchase",
              "Items customers buy together with the given item, from Purchase events only.", needs_item=True),
    _use_case("aws-ecomm-customers-who-viewed-x-also-viewed", "ECOMMERCE", Sims, SimsModel, "View",
              "Items viewed by the customers who viewed the given item.", needs_user=True, needs_item=True,
              excludes_event="Purchase"),
    _use_case("aws-ecomm-recommended-for-you", "ECOMMERCE", UserPersonalization, _PERSONALIZATION_MODEL, "View",
              "Personalized recommendations from each customer's interactions.", trains_on_all=True,
              needs_user=True, excludes_event="Purchase"),
    _use_case("aws-vod-because-you-watched-x", "VIDEO_ON_DEMAND", Sims, SimsModel, "Watch",
              "Videos watched by the viewers of the given (or the user's latest) video.", needs_user=True,
              excludes_event="Watch", item_from_history=True),
    _use_case("aws-vod-more-like-x", "VIDEO_ON_DEMAND", SimilarItems, SimilarItemsModel, "Watch",
              "Videos similar to the given one in co-watching and metadata.", needs_user=True, needs_item=True,
              excludes_event="Watch"),
    _use_case("aws-vod-most-popular", "VIDEO_ON_DEMAND", PopularityCount, PopularityModel, "Watch",
              "Most watched videos.", needs_user=True),
    _use_case("aws-vod-trending-now", "VIDEO_ON_DEMAND", TrendingNow, TrendingModel, "Watch",
              "Videos whose watching grows fastest.", needs_user=True),
    _use_case("aws-vod-top-picks", "VIDEO_ON_DEMAND", UserPersonalization, _PERSONALIZATION_MODEL, "Watch",
              "Personalized picks from each viewer's interactions.", trains_on_all=True, needs_user=True,
              excludes_event="Watch"),
)
