"""Personalize filter expressions (docs/reference/personalize-api.md#filters): compile once, evaluate to a boolean mask.

Usage by the server:
    flt = compile_filter(expression)                  # FilterError(message) → InvalidInputException
    table = ItemTable.from_rows(model.item_ids, items_by_id)   # cache per model + items version
    mask = flt.item_mask(FilterContext(items=table, interactions=..., current_user=..., current_item=...),
                         filter_values)              # bool array over model.item_ids → candidates=
    users = flt.user_mask(user_ids, users_by_id, filter_values)   # INCLUDE/EXCLUDE UserID (segments)
"""

from local_personalize.filters.context import FilterContext, ItemTable, UserInteraction
from local_personalize.filters.errors import FilterError
from local_personalize.filters.evaluate import Filter, compile_filter

__all__ = ["Filter", "FilterContext", "FilterError", "ItemTable", "UserInteraction", "compile_filter"]
