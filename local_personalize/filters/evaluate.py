"""Compiled filters: boolean masks over items (or users) from a parsed expression (docs/reference/personalize-api.md#filters).

Semantics: INCLUDE parts are OR-ed, EXCLUDE parts are OR-ed, and the result is (union of INCLUDEs,
or everything when there is none) minus (union of EXCLUDEs). An item without the field a condition
reads does not match it. A placeholder missing from filterValues is an error in an INCLUDE part; in
an EXCLUDE part its condition is dropped (docs/reference/personalize-api.md#getrecommendations), and a part with no
condition left, or whose IF guard lacks its value, is skipped. Event types match case-insensitively, other strings
exactly.
"""

from __future__ import annotations

import math
import operator as op
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from local_personalize.filters.context import FilterContext, ItemTable, categories, field_value, number
from local_personalize.filters.errors import FilterError
from local_personalize.filters.grammar import RANGE_OPERATORS, Condition, Part, parse

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {"<": op.lt, "<=": op.le, ">": op.gt, ">=": op.ge}
_FILTER_VALUE = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^,"\s][^,]*?))\s*(?:,|$)')
_SKIP = object()  # a condition dropped for want of an EXCLUDE placeholder value


def parse_filter_values(raw: Mapping[str, str] | None) -> dict[str, list[str]]:
    """filterValues → lists: `"\\"comedy\\",\\"drama\\""` gives ["comedy", "drama"]; bare numbers are accepted."""
    parsed: dict[str, list[str]] = {}
    for name, text in (raw or {}).items():
        if not isinstance(text, str):
            raise FilterError(f"filterValues[{name}] must be a string of comma-separated double-quoted values")
        values, position = [], 0
        while position < len(text):
            match = _FILTER_VALUE.match(text, position)
            if match is None or match.end() == position:
                raise FilterError(
                    f'filterValues[{name}] is not a list of double-quoted values such as "\\"a\\",\\"b\\"": {text!r}'
                )
            quoted, bare = match.group(1), match.group(2)
            values.append(re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare.strip())
            position = match.end()
        if not values:
            raise FilterError(f"filterValues[{name}] is empty")
        parsed[name] = values
    return parsed


def _as_text(value: str | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


class Filter:
    """A compiled filter expression; immutable and safe to share between requests and threads."""

    def __init__(self, expression: str, parts: list[Part]) -> None:
        targets = {part.target for part in parts}
        if len(targets) > 1:
            raise FilterError("Invalid filter expression: ItemID and UserID parts cannot be combined")
        self.expression = expression
        self.parts = parts
        self.target = targets.pop()
        conditions = [c for part in parts for group in part.any_of + [part.guards] for c in group]
        self.parameters = frozenset(c.value.parameter for c in conditions if c.value.parameter)
        self.uses_interactions = any(part.dataset == "Interactions" for part in parts)
        self.uses_current_user = any(part.guards for part in parts)
        self.uses_current_item = any(c.value.current_item_field for c in conditions)

    def item_mask(self, context: FilterContext, filter_values: Mapping[str, str] | None = None) -> np.ndarray:
        """Bool array over context.items: True = the item may be recommended."""
        if self.target != "ItemID":
            raise FilterError("This filter selects users (UserID); it applies to batch segment jobs only")
        return self._combine(context.items, context, parse_filter_values(filter_values))

    def user_mask(
        self,
        user_ids: Sequence[str],
        users_by_id: Mapping[str, Mapping[str, Any]],
        filter_values: Mapping[str, str] | None = None,
    ) -> np.ndarray:
        """Bool array over user_ids for UserID filters (batch segment jobs)."""
        if self.target != "UserID":
            raise FilterError("This filter selects items (ItemID); batch segment jobs need a UserID filter")
        table = ItemTable(user_ids, users_by_id)
        return self._combine(table, FilterContext(table), parse_filter_values(filter_values))

    def _combine(self, table: ItemTable, context: FilterContext, values: dict[str, list[str]]) -> np.ndarray:
        included, excluded = None, np.zeros(len(table), dtype=bool)
        for part in self.parts:
            if not self._guards_hold(part, context.current_user, values):
                continue
            mask = self._part_mask(part, table, context, values)
            if mask is None:
                continue
            if part.action == "INCLUDE":
                included = mask if included is None else included | mask
            else:
                excluded |= mask
        result = np.ones(len(table), dtype=bool) if included is None else included
        return result & ~excluded

    def _part_mask(
        self, part: Part, table: ItemTable, context: FilterContext, values: dict[str, list[str]]
    ) -> np.ndarray | None:
        union = None
        for group in part.any_of:
            masks = [self._condition(part, c, table, context, values) for c in group]
            kept = [m for m in masks if m is not _SKIP]
            if not kept:
                continue
            joined = np.logical_and.reduce(kept) if len(kept) > 1 else kept[0]
            union = joined if union is None else union | joined
        return union

    def _resolve(self, part: Part, condition: Condition, context: FilterContext, values: dict[str, list[str]]) -> Any:
        value = condition.value
        if value.parameter is not None:
            if value.parameter in values:
                return values[value.parameter]
            if part.action == "INCLUDE":
                raise FilterError(f"Missing filterValues entry for ${value.parameter}: INCLUDE filters need all values")
            return _SKIP
        if value.current_item_field is not None:
            if context.current_item is None:
                raise FilterError("This filter compares with CurrentItem: it needs an itemId (related-items campaigns)")
            return categories(field_value(context.current_item, value.current_item_field))
        return [_as_text(v) if not isinstance(v, str) else v for v in value.literals]

    def _condition(
        self, part: Part, condition: Condition, table: ItemTable, context: FilterContext, values: dict[str, list[str]]
    ) -> Any:
        wanted = self._resolve(part, condition, context, values)
        if wanted is _SKIP:
            return _SKIP
        if condition.dataset == "Interactions":
            return _interacted(table, context, wanted)
        operator = condition.operator
        if operator in RANGE_OPERATORS:
            bound = _single_number(condition, wanted)
            column = table.numbers(condition.field)
            with np.errstate(invalid="ignore"):
                return _COMPARE[operator](column, bound) if not math.isnan(bound) else np.zeros(len(table), bool)
        matches = table.matching(condition.field, wanted)
        if operator == "=":
            numeric = [number(v) for v in wanted]
            if wanted and not any(math.isnan(n) for n in numeric):
                matches = matches | np.isin(table.numbers(condition.field), numeric)
        return ~matches if operator == "NOT IN" else matches

    def _guards_hold(self, part: Part, user: Mapping[str, Any] | None, values: dict[str, list[str]]) -> bool:
        for guard in part.guards:
            wanted = self._resolve(part, guard, FilterContext(ItemTable([], {})), values)
            if wanted is _SKIP or user is None:
                return False
            actual = field_value(user, guard.field)
            if guard.operator in RANGE_OPERATORS:
                if not _COMPARE[guard.operator](number(actual), _single_number(guard, wanted)):
                    return False
                continue
            held = set(categories(actual))
            hit = bool(held & set(wanted)) or (
                guard.operator == "=" and not math.isnan(number(actual))
                and any(number(actual) == number(v) for v in wanted)
            )
            if hit == (guard.operator == "NOT IN"):
                return False
        return True


def _interacted(table: ItemTable, context: FilterContext, event_types: list[str]) -> np.ndarray:
    """Items the user interacted with through any of `event_types` ("*" = any type)."""
    any_type = "*" in event_types
    wanted = {t.lower() for t in event_types}
    mask = np.zeros(len(table), dtype=bool)
    for interaction in context.interactions:
        if any_type or (interaction.event_type or "").lower() in wanted:
            position = table.position.get(interaction.item_id)
            if position is not None:
                mask[position] = True
    return mask


def _single_number(condition: Condition, wanted: list[str]) -> float:
    if len(wanted) != 1:
        raise FilterError(f"{condition.dataset}.{condition.field} {condition.operator} takes exactly one value")
    bound = number(wanted[0])
    if math.isnan(bound):
        raise FilterError(
            f"{condition.dataset}.{condition.field} {condition.operator} needs a number, got {wanted[0]!r}"
        )
    return bound


def compile_filter(expression: str) -> Filter:
    """Parse and check an expression; raises FilterError with the reason."""
    return Filter(expression, parse(expression))
