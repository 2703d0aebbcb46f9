"""What a filter is evaluated against: the item catalogue, the user's interactions, current user/item."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


class UserInteraction(NamedTuple):
    """One of the current user's interactions (bulk import or PutEvents), newest last or any order."""

    item_id: str
    event_type: str | None
    timestamp: float


class ItemTable:
    """Item metadata in columns, aligned with a model's item_ids; build once, reuse across requests."""

    def __init__(self, item_ids: Sequence[str], rows_by_id: Mapping[str, Mapping[str, Any]]) -> None:
        raise NotImplementedError

    @classmethod
    def from_rows(cls, item_ids: Sequence[str], rows_by_id: Mapping[str, Mapping[str, Any]]) -> ItemTable:
        return cls(item_ids, rows_by_id)


@dataclass
class FilterContext:
    """Everything one request's filter may look at; fields a filter does not use may stay empty."""

    items: ItemTable
    interactions: Sequence[UserInteraction] = ()
    current_user: Mapping[str, Any] | None = None  # Users-dataset row (UPPER_SNAKE keys)
    current_item: Mapping[str, Any] | None = None  # Items-dataset row of the request's itemId (RELATED_ITEMS)
    extra: dict[str, Any] = field(default_factory=dict)
