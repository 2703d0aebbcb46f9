"""aws-next-best-action: the actions each user is most likely to take next (GetActionRecommendations, docs/reference/personalize-api.md#getactionrecommendations).

Trained on the Action interactions dataset: its TAKEN events are the positives (NOT_TAKEN and VIEWED
carry no preference here), the Actions dataset is the catalogue, so actions nobody took yet can still be
recommended. https://docs.aws.amazon.com/personalize/latest/dg/native-recipe-next-best-action.html
"""

from __future__ import annotations

import numpy as np

from local_personalize.recipes.base import Recipe, RecipeType, TrainingConfig, TrainingData, TrainingError
from local_personalize.recipes.personalization import PersonalizationModel, train_personalization

TAKEN = "TAKEN"


def taken_only(data: TrainingData) -> TrainingData:
    """The same catalogue, with only the TAKEN action interactions."""
    codes = [code for code, name in enumerate(data.event_types) if name.upper() == TAKEN]
    if not codes:
        raise TrainingError("aws-next-best-action needs action interactions with EVENT_TYPE TAKEN")
    keep = np.isin(data.event_type, codes)
    return TrainingData(
        user_ids=data.user_ids, item_ids=data.item_ids, user_index=data.user_index[keep],
        item_index=data.item_index[keep], timestamp=data.timestamp[keep], event_type=data.event_type[keep],
        event_types=data.event_types, event_value=None if data.event_value is None else data.event_value[keep],
        item_metadata=data.item_metadata, user_metadata=data.user_metadata)


class NextBestAction(Recipe):
    name = "aws-next-best-action"
    recipe_type = RecipeType.PERSONALIZED_ACTIONS
    description = "The actions a user is most likely to take, from the Action interactions dataset."
    model_class = PersonalizationModel
    supports_batch_inference = False  # batch action recommendations are not emulated yet (README)

    @classmethod
    def train(cls, data: TrainingData, config: TrainingConfig | None = None) -> PersonalizationModel:
        return train_personalization(taken_only(data), config, cls.name, cls.recipe_type)
