"""Compiled filters: masks over items (or users) from a parsed expression."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from local_personalize.filters.context import FilterContext


class Filter:
    """A compiled filter expression; immutable and safe to share between requests."""

    expression: str
    target: str  # "ItemID" or "UserID"
    parameters: frozenset[str]  # placeholder names without "$"
    uses_interactions: bool
    uses_current_user: bool
    uses_current_item: bool

    def item_mask(self, context: FilterContext, filter_values: Mapping[str, str] | None = None) -> np.ndarray:
        """Bool array over context.items.item_ids: True = the item may be recommended."""
        raise NotImplementedError

    def user_mask(
        self,
        user_ids: Sequence[str],
        users_by_id: Mapping[str, Mapping[str, Any]],
        filter_values: Mapping[str, str] | None = None,
    ) -> np.ndarray:
        """Bool array over user_ids for UserID filters (batch segment jobs)."""
        raise NotImplementedError


def compile_filter(expression: str) -> Filter:
    """Parse and check an expression; raises FilterError with the reason."""
    raise NotImplementedError
