"""Recommendations served to templates (Braze Connected Content) from the store batch exports fill."""

from personalize_hub.recommendations.config import RecommendationsConfig

__all__ = ["RecommendationsConfig"]
