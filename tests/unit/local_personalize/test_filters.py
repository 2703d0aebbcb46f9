"""Filter expressions (docs/reference/personalize-api.md#filters): grammar, errors, and the masks they produce."""

from __future__ import annotations

import numpy as np
import pytest

from local_personalize.filters import FilterContext, FilterError, ItemTable, UserInteraction, compile_filter
from local_personalize.filters.evaluate import parse_filter_values

ITEMS = {
    "a": {"GENRE": "Horror|Action", "PRICE": 5, "BRAND": "acme"},
    "b": {"GENRE": "Comedy", "PRICE": 15, "BRAND": "zenith"},
    "c": {"genre": "Drama", "price": "25", "brand": "acme"},  # keys as PutItems' camelCase may arrive
    "d": {},  # an item without metadata
}
TABLE = ItemTable.from_rows(list(ITEMS), ITEMS)
HISTORY = [UserInteraction("a", "Purchase", 1.0), UserInteraction("b", "click", 2.0),
           UserInteraction("gone", "purchase", 3.0)]  # an item no longer in the catalogue


def allowed(expression: str, values: dict | None = None, *, user: dict | None = None,
            item: dict | None = None, history=HISTORY) -> str:
    mask = compile_filter(expression).item_mask(FilterContext(TABLE, history, user, item), values)
    return "".join(name for name, keep in zip(ITEMS, mask) if keep)


@pytest.mark.parametrize("expression, values, expected", [
    ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")', None, "bcd"),  # case-insensitive type
    ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")', None, "cd"),
    ('INCLUDE ItemID WHERE Interactions.EVENT_TYPE = "click"', None, "b"),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("Action")', None, "a"),  # one of a multi-value field
    ('INCLUDE ItemID WHERE Items.GENRE IN ("action")', None, ""),  # item values are case-sensitive
    ('INCLUDE ItemID WHERE Items.GENRE NOT IN ("Comedy", "Drama")', None, "ad"),
    ('INCLUDE ItemID WHERE Items.PRICE >= 15', None, "bc"),
    ('INCLUDE ItemID WHERE Items.PRICE < 20 AND Items.BRAND = "acme"', None, "a"),
    ('INCLUDE ItemID WHERE Items.PRICE > 20 OR Items.BRAND = "zenith"', None, "bc"),
    ('INCLUDE ItemID WHERE Items.PRICE = 15', None, "b"),
    ('INCLUDE ItemID WHERE Items.BRAND = "acme" OR Items.PRICE < 10 AND Items.GENRE IN ("Comedy")', None, "ac"),
    ('INCLUDE ItemID WHERE Items.GENRE IN ($GENRES)', {"GENRES": '"Comedy","Drama"'}, "bc"),
    ('INCLUDE ItemID WHERE Items.PRICE <= $MAX', {"MAX": '"15"'}, "ab"),
    ('INCLUDE ItemID WHERE Items.PRICE <= $MAX', {"MAX": "15"}, "ab"),  # bare numbers accepted [U]
    # Mixed parts: (union of INCLUDEs) minus (union of EXCLUDEs), in any order.
    ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase") | INCLUDE ItemID WHERE Items.BRAND IN ("acme")',
     None, "c"),
    ('INCLUDE ItemID WHERE Items.BRAND IN ("acme") | INCLUDE ItemID WHERE Items.PRICE = 15', None, "abc"),
    ('EXCLUDE ItemID WHERE Items.BRAND IN ("acme") | EXCLUDE ItemID WHERE Items.PRICE = 15', None, "d"),
])
def test_item_masks(expression: str, values: dict | None, expected: str) -> None:
    assert allowed(expression, values) == expected


def test_missing_value_drops_the_exclude_condition_but_fails_an_include() -> None:
    assert allowed('EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE)', {}) == "abcd"
    assert allowed('EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE) OR Items.PRICE > 20', {}) == "abd"
    with pytest.raises(FilterError, match=r"\$GENRE"):
        allowed('INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)', {})


def test_current_user_guard() -> None:
    expression = 'EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE) IF CurrentUser.AGE < $AGE'
    values = {"GENRE": '"Horror"', "AGE": '"18"'}
    assert allowed(expression, values, user={"AGE": 12}) == "bcd"
    assert allowed(expression, values, user={"AGE": 40}) == "abcd"
    assert allowed(expression, values, user=None) == "abcd"  # no user record: the guard does not hold
    assert allowed(expression, {"GENRE": '"Horror"'}, user={"AGE": 12}) == "abcd"  # guard value missing: skipped
    guarded = 'INCLUDE ItemID WHERE Items.BRAND IN ("acme") IF CurrentUser.TIER IN ("gold", "silver")'
    assert allowed(guarded, user={"TIER": "gold"}) == "ac"
    assert allowed(guarded, user={"TIER": "bronze"}) == "abcd"


def test_current_item_comparisons_for_related_items() -> None:
    expression = 'INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE'
    assert allowed(expression, item={"PRICE": 30, "GENRE": "Drama|Comedy"}) == "bc"
    with pytest.raises(FilterError, match="CurrentItem"):
        allowed(expression)


def test_filter_reports_what_it_reads() -> None:
    interactions = compile_filter('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")')
    assert interactions.uses_interactions and not interactions.uses_current_user
    guarded = compile_filter('INCLUDE ItemID WHERE Items.GENRE IN ($G) IF CurrentUser.AGE = $A')
    assert guarded.uses_current_user and guarded.parameters == {"G", "A"} and guarded.target == "ItemID"
    assert compile_filter('INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE').uses_current_item


def test_user_filters_select_segment_members() -> None:
    members = compile_filter('INCLUDE UserID WHERE Users.MEMBERSHIP IN ($LEVEL)')
    users = {"x": {"MEMBERSHIP": "gold"}, "y": {"MEMBERSHIP": "basic"}}
    assert members.user_mask(["x", "y", "z"], users, {"LEVEL": '"gold"'}).tolist() == [True, False, False]
    with pytest.raises(FilterError, match="selects users"):
        members.item_mask(FilterContext(TABLE))
    with pytest.raises(FilterError, match="selects items"):
        compile_filter('INCLUDE ItemID WHERE Items.BRAND IN ("acme")').user_mask(["x"], users)


def test_masks_come_back_aligned_with_the_table() -> None:
    table = ItemTable.from_rows([f"i{n}" for n in range(1000)], {f"i{n}": {"PRICE": n} for n in range(1000)})
    mask = compile_filter("INCLUDE ItemID WHERE Items.PRICE >= 990").item_mask(FilterContext(table))
    assert mask.dtype == bool and mask.shape == (1000,) and np.flatnonzero(mask).tolist() == list(range(990, 1000))


@pytest.mark.parametrize("expression, message", [
    ("", "empty"),
    ('INCLUDE ItemID Items.GENRE IN ("a")', "expected WHERE"),
    ('KEEP ItemID WHERE Items.GENRE IN ("a")', "expected INCLUDE or EXCLUDE"),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("a"', "expected \\)"),
    ('INCLUDE ItemID WHERE Items.GENRE ~ ("a")', "unexpected text"),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("a") AND Interactions.EVENT_TYPE IN ("b")', "use \\| to combine"),
    ('INCLUDE ItemID WHERE Items.GENRE NOT IN ($G)', "NOT IN"),
    ('INCLUDE ItemID WHERE Interactions.ITEM_ID IN ("a")', "only use EVENT_TYPE"),
    ('INCLUDE ItemID WHERE Interactions.EVENT_TYPE > "a"', "IN or ="),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("*")', '"\\*" is only allowed'),
    ('INCLUDE ItemID WHERE Stores.CITY IN ("a")', "unknown dataset"),
    ('INCLUDE ItemID WHERE Users.AGE > 3', "ItemID filters take conditions on Items or Interactions"),
    ('INCLUDE UserID WHERE Items.GENRE IN ("a")', "UserID filters take conditions on Users"),
    ('INCLUDE ItemID WHERE CurrentUser.AGE > 3', "after IF"),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("a") IF Items.PRICE > 3', "only CurrentUser"),
    ('INCLUDE ItemID WHERE Items.PRICE < (1, 2)', "one value"),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("a") | INCLUDE UserID WHERE Users.X IN ("b")', "cannot be combined"),
    ('INCLUDE ActionID WHERE Actions.X IN ("a")', "not supported"),
    ('INCLUDE ItemID WHERE Items.A = 1 AND Items.B = 1 AND Items.C = 1 AND Items.D = 1 AND Items.E = 1 '
     'AND Items.F = 1', "at most 5"),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("a") EXCLUDE', "expected \\| or the end"),
])
def test_bad_expressions_are_rejected_with_a_reason(expression: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        compile_filter(expression)


def test_filter_values_parsing() -> None:
    assert parse_filter_values({"G": '"comedy","drama"', "P": '"a \\"quoted\\" b"', "N": "5"}) == {
        "G": ["comedy", "drama"], "P": ['a "quoted" b'], "N": ["5"]}
    for bad in ('"unterminated', '"a",,"b"', ""):
        with pytest.raises(FilterError, match="filterValues"):
            parse_filter_values({"G": bad})
    with pytest.raises(FilterError, match="needs a number"):
        allowed("INCLUDE ItemID WHERE Items.PRICE < $P", {"P": '"cheap"'})
