"""Domain use cases, aws-similar-items and domain schema rules on synthetic data with planted structure."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from local_personalize.errors import InvalidInput
from local_personalize.recipes import RECIPES, RecipeType, TrainingData, TrainingError, load_model
from local_personalize.recipes.domain import DOMAIN_RECIPES
from local_personalize.schemas import check_for_dataset, parse_schema
from local_personalize.synthetic import generate

TOPIC_WORDS = ("galaxy starship alien", "dragon castle wizard", "detective murder clue", "romance wedding kiss")


@pytest.fixture(scope="module")
def shop():
    return generate(num_users=600, num_items=120, num_interactions=12_000, num_topics=4, in_topic_share=0.95,
                    event_types=("View", "Purchase"))


def recipe(name: str):
    return RECIPES[name]


def test_every_documented_use_case_is_registered_with_its_domain() -> None:
    names = {r.name: r.domain for r in DOMAIN_RECIPES}
    assert names == {
        "aws-ecomm-popular-items-by-views": "ECOMMERCE", "aws-ecomm-popular-items-by-purchases": "ECOMMERCE",
        "aws-ecomm-frequently-bought-together": "ECOMMERCE",
        "aws-ecomm-customers-who-viewed-x-also-viewed": "ECOMMERCE", "aws-ecomm-recommended-for-you": "ECOMMERCE",
        "aws-vod-because-you-watched-x": "VIDEO_ON_DEMAND", "aws-vod-more-like-x": "VIDEO_ON_DEMAND",
        "aws-vod-most-popular": "VIDEO_ON_DEMAND", "aws-vod-trending-now": "VIDEO_ON_DEMAND",
        "aws-vod-top-picks": "VIDEO_ON_DEMAND"}


def test_best_sellers_count_purchases_only(shop) -> None:
    data = shop.data
    purchase = data.event_types.index("Purchase")
    buyers: dict[int, set[int]] = {}
    for user, item, kind in zip(data.user_index.tolist(), data.item_index.tolist(), data.event_type.tolist()):
        if kind == purchase:
            buyers.setdefault(item, set()).add(user)
    expected = sorted(buyers, key=lambda item: (-len(buyers[item]), item))[:10]
    model = recipe("aws-ecomm-popular-items-by-purchases").train(data)
    assert [r.item_id for r in model.recommend("u1", None, 10)] == [data.item_ids[i] for i in expected]


def test_frequently_bought_together_ignores_views(shop) -> None:
    data = shop.data
    views_only = TrainingData(data.user_ids, data.item_ids, data.user_index, data.item_index, data.timestamp,
                              np.where(data.event_type == 1, 0, data.event_type), data.event_types)
    with pytest.raises(TrainingError, match="at least 1000 Purchase events"):
        recipe("aws-ecomm-frequently-bought-together").train(views_only)
    related = recipe("aws-ecomm-frequently-bought-together").train(data).recommend(None, "i5", 10)
    assert np.mean([shop.item_topic[int(r.item_id[1:])] == shop.item_topic[5] for r in related]) >= 0.8


def test_recommended_for_you_stays_in_the_users_topic(shop) -> None:
    model = recipe("aws-ecomm-recommended-for-you").train(shop.data)
    user = int(np.flatnonzero(np.bincount(shop.data.user_index) >= 10)[0])
    items = [int(r.item_id[1:]) for r in model.recommend(f"u{user}", None, 10)]
    assert np.mean(shop.item_topic[items] == shop.user_topic[user]) >= 0.8
    assert model.recipe_type == RecipeType.USER_PERSONALIZATION


def with_descriptions(shop, cold: int = 8) -> tuple[TrainingData, list[str]]:
    """The shop plus a textual DESCRIPTION per item and `cold` new items that nobody interacted with."""
    data = shop.data
    topic_of = {f"i{i}": int(t) for i, t in enumerate(shop.item_topic)}
    cold_ids = [f"new{k}" for k in range(cold)]
    topic_of |= {item: k % 4 for k, item in enumerate(cold_ids)}
    items = [{"ITEM_ID": item, "DESCRIPTION": f"A story with {TOPIC_WORDS[topic]} and more {item}"}
             for item, topic in topic_of.items()]
    rows = [{"USER_ID": data.user_ids[u], "ITEM_ID": data.item_ids[i], "TIMESTAMP": t, "EVENT_TYPE": "Watch"}
            for u, i, t in zip(data.user_index.tolist(), data.item_index.tolist(), data.timestamp.tolist())]
    built = TrainingData.from_rows(rows, items)
    built.item_text_fields = ["DESCRIPTION"]
    return built, cold_ids


def test_similar_items_give_cold_items_neighbours_from_their_text(shop, tmp_path) -> None:
    data, cold_ids = with_descriptions(shop)
    model = recipe("aws-similar-items").train(data)
    for k, item in enumerate(cold_ids):
        related = [r.item_id for r in model.recommend(None, item, 10)]
        topics = [shop.item_topic[int(r[1:])] if r.startswith("i") else int(r[3:]) % 4 for r in related]
        assert np.mean(np.array(topics) == k % 4) >= 0.9, (item, related)
    path = str(tmp_path / "model.npz")
    model.save(path)
    assert load_model(path).recommend(None, cold_ids[0], 10) == model.recommend(None, cold_ids[0], 10)


def test_more_like_x_is_similar_items_on_watch_events(shop) -> None:
    data, cold_ids = with_descriptions(shop)
    model = recipe("aws-vod-more-like-x").train(data)
    assert model.recipe_name == "aws-similar-items"
    assert len(model.recommend(None, cold_ids[1], 5)) == 5


def schema(name: str, fields: list[dict]) -> str:
    return orjson.dumps({"type": "record", "name": name, "namespace": "com.amazonaws.personalize.schema",
                         "fields": fields, "version": "1.0"}).decode()


@pytest.mark.parametrize("domain, kind, fields, fragment", [
    ("ECOMMERCE", "INTERACTIONS", [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                                   {"name": "TIMESTAMP", "type": "long"}], "EVENT_TYPE"),
    ("ECOMMERCE", "ITEMS", [{"name": "ITEM_ID", "type": "string"},
                            {"name": "CATEGORY_L1", "type": "string", "categorical": True}], "PRICE"),
    ("ECOMMERCE", "ITEMS", [{"name": "ITEM_ID", "type": "string"}, {"name": "PRICE", "type": "float"},
                            {"name": "CATEGORY_L1", "type": "int"}], "CATEGORY_L1 must be string"),
    ("VIDEO_ON_DEMAND", "ITEMS", [{"name": "ITEM_ID", "type": "string"},
                                  {"name": "YEAR", "type": "int"}], "GENRES"),
])
def test_domain_schemas_need_their_fields(domain, kind, fields, fragment) -> None:
    parsed = parse_schema(schema(kind.capitalize(), fields))
    check_for_dataset(parsed, kind)  # a custom group takes it
    with pytest.raises(InvalidInput, match=fragment):
        check_for_dataset(parsed, kind, domain)


def test_domain_items_schema_as_documented_is_accepted() -> None:
    fields = [{"name": "ITEM_ID", "type": "string"}, {"name": "PRICE", "type": "float"},
              {"name": "CATEGORY_L1", "type": "string", "categorical": True},
              {"name": "PRODUCT_DESCRIPTION", "type": ["null", "string"], "textual": True}]
    check_for_dataset(parse_schema(schema("Items", fields)), "ITEMS", "ECOMMERCE")


def test_user_personalization_ranks_cold_items_by_their_text(shop, tmp_path) -> None:
    data, cold_ids = with_descriptions(shop, cold=20)
    model = recipe("aws-user-personalization").train(data)
    path = str(tmp_path / "model.npz")
    model.save(path)
    loaded = load_model(path)
    agree = []
    for user in np.flatnonzero(np.bincount(shop.data.user_index) >= 10)[:30].tolist():
        ranked = [r.item_id for r in loaded.rank(f"u{user}", cold_ids)]
        top = ranked[:5]  # five cold items per topic: the user's topic should come first
        agree.append(np.mean([int(item[3:]) % 4 == shop.user_topic[user] for item in top]))
    assert np.mean(agree) >= 0.8
    assert loaded.rank("u1", cold_ids) == model.rank("u1", cold_ids)
