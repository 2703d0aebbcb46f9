"""Item-Attribute-Affinity queries: `ITEMS.GENRE = "Comedy" AND ITEMS.GENRE = "Action"` → the items they select.

A query is one or more `ITEMS.<column> = "<value>"` conditions joined by AND; `\\` escapes a quote or
backslash inside a value; a categorical value matches any of an item's `|`-separated values.
https://docs.aws.amazon.com/personalize/latest/dg/prepare-input-data-user-segment.html
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from local_personalize.filters.context import categories, field_value

# An input file holds at most 10 item-attribute queries (item-attribute-affinity-recipe.html).
MAX_QUERIES = 10
_CONDITION = re.compile(r'\s*ITEMS\.([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*', re.IGNORECASE)
_AND = re.compile(r"AND", re.IGNORECASE)


def parse_query(query: str) -> list[tuple[str, str]]:
    """(column, value) conditions of a query; ValueError naming what is wrong."""
    conditions, position = [], 0
    while True:
        found = _CONDITION.match(query, position)
        if found is None:
            raise ValueError(f"itemAttributes must be ITEMS.<column> = \"<value>\" conditions joined by AND "
                             f"(at character {position + 1})")
        conditions.append((found.group(1).upper(), re.sub(r"\\(.)", r"\1", found.group(2))))
        position = found.end()
        if position == len(query):
            return conditions
        joined = _AND.match(query, position)
        if joined is None:
            raise ValueError(f"expected AND at character {position + 1} of itemAttributes")
        position = joined.end()


def matching_items(query: str, item_ids: Sequence[str], items: Mapping[str, Mapping[str, Any]]) -> np.ndarray:
    """Bool mask over `item_ids`: the items whose metadata meets every condition of the query."""
    conditions = parse_query(query)
    mask = np.zeros(len(item_ids), dtype=bool)
    for index, item_id in enumerate(item_ids):
        row = items.get(item_id)
        mask[index] = row is not None and all(
            value in categories(field_value(row, column)) for column, value in conditions)
    return mask
