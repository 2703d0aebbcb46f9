"""What a filter is evaluated against: the item catalogue, the user's interactions, current user/item."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

# categorical multi-values, e.g. "Horror|Action" (docs/reference/personalize-api.md#putitems-and-putusers)
MULTI_VALUE_SEPARATOR = "|"


class UserInteraction(NamedTuple):
    """One of the current user's interactions (bulk import or PutEvents)."""

    item_id: str
    event_type: str | None
    timestamp: float


def field_value(row: Mapping[str, Any] | None, name: str) -> Any:
    """A row's value for a schema field, matching the name case-insensitively (rows may be camelCase)."""
    if not row:
        return None
    if name in row:
        return row[name]
    wanted = name.replace("_", "").lower()
    for key, value in row.items():
        if key.replace("_", "").lower() == wanted:
            return value
    return None


def categories(value: Any) -> list[str]:
    """The categorical values of a field: "Horror|Action" → ["Horror", "Action"]; booleans lower-case."""
    if value is None:
        return []
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return [part for part in str(value).split(MULTI_VALUE_SEPARATOR) if part != ""]


def number(value: Any) -> float:
    """A numeric field value, NaN when missing or not a number."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class ItemTable:
    """Item (or user) attributes in columns aligned with an id list; build once, reuse across requests.

    Columns are built on first use and cached: an inverted index for categorical matches and a float
    array for range comparisons, so a request costs a few numpy operations, not a pass over rows.
    """

    def __init__(self, ids: Sequence[str], rows_by_id: Mapping[str, Mapping[str, Any]]) -> None:
        self.ids = list(ids)
        self.item_ids = self.ids  # the name callers use for item tables
        self.position = {item_id: i for i, item_id in enumerate(self.ids)}
        self._rows = [rows_by_id.get(item_id) for item_id in self.ids]
        self._index: dict[str, dict[str, np.ndarray]] = {}
        self._numbers: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_rows(cls, ids: Sequence[str], rows_by_id: Mapping[str, Mapping[str, Any]]) -> ItemTable:
        return cls(ids, rows_by_id)

    def __len__(self) -> int:
        return len(self.ids)

    def matching(self, field: str, values: Sequence[str]) -> np.ndarray:
        """Mask of rows whose categorical field holds any of `values` (exact, case-sensitive)."""
        index = self._inverted(field.upper())
        mask = np.zeros(len(self.ids), dtype=bool)
        for value in values:
            positions = index.get(value)
            if positions is not None:
                mask[positions] = True
        return mask

    def numbers(self, field: str) -> np.ndarray:
        """Float column (NaN where missing) for range operators."""
        key = field.upper()
        column = self._numbers.get(key)
        if column is None:
            with self._lock:
                column = np.array([number(field_value(row, key)) for row in self._rows], dtype=np.float64)
                self._numbers[key] = column
        return column

    def _inverted(self, key: str) -> dict[str, np.ndarray]:
        index = self._index.get(key)
        if index is None:
            with self._lock:
                lists: dict[str, list[int]] = {}
                for position, row in enumerate(self._rows):
                    for value in categories(field_value(row, key)):
                        lists.setdefault(value, []).append(position)
                index = {value: np.array(found, dtype=np.int64) for value, found in lists.items()}
                self._index[key] = index
        return index


@dataclass
class FilterContext:
    """Everything one request's filter may look at; fields a filter does not use may stay empty."""

    items: ItemTable
    # the caller keeps the 100 newest per event type (docs/reference/personalize-api.md#filters)
    interactions: Sequence[UserInteraction] = ()
    current_user: Mapping[str, Any] | None = None  # Users-dataset row
    current_item: Mapping[str, Any] | None = None  # Items-dataset row of the request's itemId (RELATED_ITEMS)
