"""Recommendations served to templates (Braze Connected Content) from the store batch exports fill."""

from hub.recommendations.config import RecommendationsConfig

__all__ = ["RecommendationsConfig"]
