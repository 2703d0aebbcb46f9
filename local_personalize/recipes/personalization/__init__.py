"""User-Personalization, Personalized-Ranking and Item-Affinity share one model: see model.py."""

from local_personalize.recipes.personalization.model import PersonalizationModel
from local_personalize.recipes.personalization.training import train_personalization

__all__ = ["PersonalizationModel", "train_personalization"]
