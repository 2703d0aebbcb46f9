"""Batch output lines (docs/reference/personalize-api.md#batch-inference-jobs, #batch-segment-jobs): decoded, decorated, hashed; bad lines named."""

from __future__ import annotations

import json

import pytest

from personalize_hub.jobs import Recipe
from workers.outputs import Decorated, Decorator, LineError, digest_of

CATALOG = {"i1": {"name": "Boots", "price": "89.90"}, "i2": {"name": "Socks", "price": "4.50"}}


def line(user="u1", items=("i1", "i2"), scores=(0.7, 0.2), **changes) -> bytes:
    body = {"input": {"userId": user}, "output": {"recommendedItems": list(items), "scores": list(scores)},
            "error": None, **changes}
    return json.dumps(body).encode()


def decorate(raw: bytes, recipe=Recipe.USER_RECOMMENDATIONS, catalog=CATALOG, keep=False, contact=None):
    decorator = Decorator(recipe, "weekly", "weekly-1", catalog, keep)
    read = decorator.read(raw)
    return read if isinstance(read, LineError) else decorator.decorate(*read, raw, contact)


def test_user_line_is_decorated_in_rank_order():
    result = decorate(line(), contact={"email": "a@b.example", "attributes": {"firstName": "Ada"}})
    assert isinstance(result, Decorated) and result.key == "u1" and result.missing_items == 0
    assert result.record == {
        "userId": "u1", "job": "weekly", "runId": "weekly-1", "email": "a@b.example",
        "items": [{"itemId": "i1", "score": 0.7, "name": "Boots", "price": "89.90"},
                  {"itemId": "i2", "score": 0.2, "name": "Socks", "price": "4.50"}],
        "attributes": {"firstName": "Ada"}}


def test_digest_ignores_the_run_and_follows_what_the_user_would_get():
    first, again = decorate(line()), Decorator(Recipe.USER_RECOMMENDATIONS, "weekly", "weekly-2", CATALOG, False)
    raw = line()
    assert again.decorate(*again.read(raw), raw).digest == first.digest
    assert decorate(line(items=("i2", "i1"))).digest != first.digest  # order matters
    assert decorate(line(), catalog={**CATALOG, "i1": {"name": "Boots", "price": "79.90"}}).digest != first.digest
    assert decorate(line(), contact={"email": "x@y.example"}).digest != first.digest


def test_items_unknown_to_the_catalog_are_dropped_and_counted_or_kept():
    dropped = decorate(line(items=("i1", "i9"), scores=(0.5, 0.4)))
    assert [i["itemId"] for i in dropped.record["items"]] == ["i1"] and dropped.missing_items == 1
    kept = decorate(line(items=("i1", "i9"), scores=(0.5, 0.4)), keep=True)
    assert kept.record["items"][1] == {"itemId": "i9", "score": 0.4} and kept.missing_items == 0
    no_catalog = decorate(line(), catalog=None)
    assert no_catalog.record["items"] == [{"itemId": "i1", "score": 0.7}, {"itemId": "i2", "score": 0.2}]


def test_users_sharing_an_item_get_items_of_their_own_with_their_own_scores():
    decorator = Decorator(Recipe.USER_RECOMMENDATIONS, "weekly", "weekly-1", CATALOG, False)
    raw_a, raw_b = line("a", scores=(0.7, 0.2)), line("b", scores=(0.3, 0.1))
    a, b = (decorator.decorate(*decorator.read(raw), raw) for raw in (raw_a, raw_b))
    a.record["items"][0]["name"] = "changed by a destination"
    assert b.record["items"][0] == {"itemId": "i1", "score": 0.3, "name": "Boots", "price": "89.90"}
    assert [i["score"] for i in a.record["items"]] == [0.7, 0.2]


def test_a_catalog_column_named_like_an_item_field_keeps_its_place():
    # {"itemId", "score", **metadata}: a catalog "score" column wins over the line's score, as it always did.
    catalog = {"i1": {"name": "Boots", "score": "5 stars"}, "i2": {"name": "Socks"}}
    result = decorate(line(), catalog=catalog)
    assert result.record["items"] == [{"itemId": "i1", "score": "5 stars", "name": "Boots"},
                                      {"itemId": "i2", "score": 0.2, "name": "Socks"}]


def test_recipes_without_scores_have_no_score_key():
    raw = json.dumps({"input": {"itemId": "i1"}, "output": {"recommendedItems": ["i2"]}}).encode()
    result = decorate(raw, Recipe.RELATED_ITEMS)
    assert result.key == "i1" and result.record["items"] == [{"itemId": "i2", "name": "Socks", "price": "4.50"}]
    assert set(result.record) == {"itemId", "items", "job", "runId"}


def test_segment_line_is_an_audience():
    raw = json.dumps({"input": {"itemId": "i1"}, "output": {"recommendedUsers": ["u1", "u2"]}}).encode()
    result = decorate(raw, Recipe.ITEM_AFFINITY)
    assert result.record == {"itemId": "i1", "users": ["u1", "u2"], "job": "weekly", "runId": "weekly-1"}


@pytest.mark.parametrize(("raw", "reason"), [
    (b'{"input": {"userId": "u1"', "invalid_json"),
    (b"[1, 2]", "invalid_line"),
    (b'{"input": {"userId": "u1"}, "output": {"recommendedItems": "i1"}}', "invalid_line"),
    (json.dumps({"input": "not json", "error": "Input line is not a JSON object"}).encode(), "personalize_error"),
    (json.dumps({"input": {"itemId": "i1"}, "output": {"recommendedItems": ["i1"]}}).encode(), "missing_input_id"),
    (json.dumps({"input": {"userId": "u1"}, "error": None}).encode(), "missing_output"),
    (json.dumps({"input": {"userId": "u1"}, "output": {"recommendedUsers": ["u2"]}}).encode(), "missing_output"),
    (line(scores=(0.5,)), "invalid_line"),
    (line(items=(), scores=()), "no_items"),
    (line(items=("i8", "i9")), "no_items_with_metadata"),
])
def test_bad_lines_are_named(raw, reason):
    result = decorate(raw)
    assert isinstance(result, LineError) and result.reason == reason and result.message


@pytest.mark.parametrize("scored", [True, False])
@pytest.mark.parametrize("contact", [None, {"email": "a@b.example", "attributes": {"z": 1, "a": [2, {"y": 1, "b": 0}]}},
                                     {"email": ""}, {"attributes": {}}])
def test_digests_spliced_from_prepared_items_are_digest_of_the_items(scored, contact):
    # Catalog items are encoded once and each user's scores spliced in: the very bytes digest_of hashes,
    # or a weekly rerun would send everyone again. Keys around "score", nesting, escapes and "%" included.
    catalog = {"i1": {"name": "50% off", "zeta": {"b": 1, "a": [None, {"y": 2, "x": "%b"}]}, "Zed": True},
               "i2": {"name": 'S\u00f6"cks', "scora": 1, "scorf": "%%s", "url": "https://s/%20"}, "i3": {}}
    decorator = Decorator(Recipe.USER_RECOMMENDATIONS, "weekly", "weekly-1", catalog, False, views_only=True)
    for item_ids, scores in ((["i1", "i2", "i3"], [0.5, 1e-9, 3.0]), (["i3", "i1"], [123456.789, 0.0])):
        raw = line(items=item_ids, scores=scores) if scored else json.dumps(
            {"input": {"userId": "u1"}, "output": {"recommendedItems": item_ids}}).encode()
        result = decorator.decorate(*decorator.read(raw), raw, contact)
        items = [{"itemId": i, **({"score": s} if scored else {}), **catalog[i]} for i, s in zip(item_ids, scores)]
        email, attributes = (contact.get("email"), contact.get("attributes") or {}) if contact else (None, {})
        assert result.digest == digest_of(items, email, attributes)
    assert all(part is not None for _, part in decorator._prepared[scored].values())  # spliced, not re-encoded



@pytest.mark.parametrize("scored", [True, False])
def test_related_items_digests_spliced_from_prepared_items_are_digest_of_the_items(scored):
    # The same splicing for an item's related items: digest_of(items) exactly, the items wrapped once more.
    decorator = Decorator(Recipe.RELATED_ITEMS, "weekly", "weekly-1", CATALOG, False)
    output = {"recommendedItems": ["i2", "i1"], **({"scores": [0.5, 1e-9]} if scored else {})}
    raw = json.dumps({"input": {"itemId": "i0"}, "output": output}).encode()
    result = decorator.decorate(*decorator.read(raw), raw)
    items = [{"itemId": i, **({"score": s} if scored else {}), **CATALOG[i]}
             for i, s in zip(output["recommendedItems"], output.get("scores", [None, None]))]
    assert result.digest == digest_of(items)

def test_views_only_records_leave_the_items_to_the_view_which_copies_them_once_asked():
    full = Decorator(Recipe.USER_RECOMMENDATIONS, "weekly", "weekly-1", CATALOG, False)
    lean = Decorator(Recipe.USER_RECOMMENDATIONS, "weekly", "weekly-1", CATALOG, False, views_only=True)
    contact = {"email": "a@b.example", "attributes": {"firstName": "Ada"}}
    raw = line()
    want, got = full.decorate(*full.read(raw), raw, contact), lean.decorate(*lean.read(raw), raw, contact)
    assert got.digest == want.digest and got.record == {"userId": "u1", "job": "weekly", "runId": "weekly-1"}
    view, full_view = got.record.recommendations, want.record.recommendations
    assert (view.user_id, view.email, view.job, view.run_id, view.attributes, view.item_ids) == (
        full_view.user_id, full_view.email, full_view.job, full_view.run_id, full_view.attributes, full_view.item_ids)
    assert view.items == want.record["items"] and view.items is view.items  # copied once, on first read
    view.items[0]["name"] = "changed by a destination"
    other = lean.decorate(*lean.read(raw), raw, contact).record.recommendations
    assert other.items[0]["name"] == "Boots"
    # A record the check refuses keeps its items, so each destination names what is wrong as before.
    bad = lean.decorate(*lean.read(raw), raw, {"email": "not an address"})
    assert bad.record.recommendations is None and bad.record["items"] == want.record["items"]
