"""Every recipe learns the structure planted in synthetic data; training config, gates and persistence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from local_personalize.item_attributes import matching_items, parse_query
from local_personalize.recipes import (
    RECIPES,
    RecipeType,
    TrainingConfig,
    TrainingData,
    TrainingError,
    load_model,
    recipe_for_arn,
)
from local_personalize.synthetic import SyntheticShop, generate

TOPICS = 4


@pytest.fixture(scope="module")
def shop() -> SyntheticShop:
    """Clickstream-like: users come back to the same items (about 40 % of events are repeats)."""
    return generate(num_users=800, num_items=200, num_interactions=16_000, num_topics=TOPICS, in_topic_share=0.9)


@pytest.fixture(scope="module")
def unique_shop() -> SyntheticShop:
    """Rating-like: each (user, item) pair once."""
    return generate(num_users=800, num_items=200, num_interactions=16_000, num_topics=TOPICS, in_topic_share=0.9,
                    unique_pairs=True)


def topic_share(shop: SyntheticShop, user: int, item_ids: list[str]) -> float:
    """Share of `item_ids` that belong to the user's planted topic."""
    return float(np.mean([shop.item_topic[int(i[1:])] == shop.user_topic[user] for i in item_ids]))


def active_users(shop: SyntheticShop, minimum: int = 5) -> list[int]:
    counts = np.bincount(shop.data.user_index, minlength=len(shop.data.user_ids))
    return np.flatnonzero(counts >= minimum)[:60].tolist()


def test_registry_names_types_and_arns() -> None:
    expected = {
        "aws-user-personalization": RecipeType.USER_PERSONALIZATION,
        "aws-user-personalization-v2": RecipeType.USER_PERSONALIZATION,
        "aws-sims": RecipeType.RELATED_ITEMS,
        "aws-popularity-count": RecipeType.POPULAR_ITEMS,
        "aws-trending-now": RecipeType.POPULAR_ITEMS,
        "aws-personalized-ranking": RecipeType.PERSONALIZED_RANKING,
        "aws-personalized-ranking-v2": RecipeType.PERSONALIZED_RANKING,
        "aws-item-affinity": RecipeType.USER_SEGMENTATION,
        "aws-item-attribute-affinity": RecipeType.USER_SEGMENTATION,
        "aws-next-best-action": RecipeType.PERSONALIZED_ACTIONS,
        "aws-similar-items": RecipeType.RELATED_ITEMS,
    }
    custom = {name: recipe.recipe_type for name, recipe in RECIPES.items() if recipe.domain is None}
    assert custom == expected
    assert recipe_for_arn("arn:aws:personalize:::recipe/aws-sims") is RECIPES["aws-sims"]
    assert recipe_for_arn("arn:aws:personalize:::recipe/aws-nope") is None


def test_popularity_counts_distinct_users_not_events(shop: SyntheticShop) -> None:
    data = shop.data
    model = RECIPES["aws-popularity-count"].train(data)
    distinct: dict[int, set[int]] = {}
    for user, item in zip(data.user_index.tolist(), data.item_index.tolist()):
        distinct.setdefault(item, set()).add(user)
    expected = sorted(distinct, key=lambda item: (-len(distinct[item]), item))[:10]
    recs = model.recommend("anyone", None, 10)
    assert [r.item_id for r in recs] == [data.item_ids[i] for i in expected]
    assert all(r.score is None for r in recs) and not model.with_scores


def test_candidates_mask_restricts_every_recipe(shop: SyntheticShop) -> None:
    allowed = np.zeros(len(shop.data.item_ids), bool)
    allowed[::7] = True
    for name in ("aws-popularity-count", "aws-sims", "aws-user-personalization", "aws-trending-now"):
        model = RECIPES[name].train(shop.data)
        recs = model.recommend("u1", "i3", 10, candidates=allowed)
        assert recs and all(int(r.item_id[1:]) % 7 == 0 for r in recs), name


@pytest.mark.parametrize("algorithm", ["ease", "ials"])
def test_user_personalization_recommends_inside_the_users_topic(shop: SyntheticShop, algorithm: str) -> None:
    model = RECIPES["aws-user-personalization"].train(
        shop.data, TrainingConfig(hyperparameters={"local_algorithm": algorithm})
    )
    assert model.scorer.kind == algorithm
    lists = {u: [r.item_id for r in model.recommend(f"u{u}", None, 10)] for u in active_users(shop)}
    # The data puts 90 % of each user's events in their topic and 10 % in their second one; popularity alone
    # puts ~25 % of a list in the user's topic.
    assert np.mean([topic_share(shop, u, items) for u, items in lists.items()]) >= 0.8
    assert np.mean([np.isin(shop.item_topic[[int(i[1:]) for i in items]],
                            (shop.user_topic[u], shop.user_second_topic[u])).mean()
                    for u, items in lists.items()]) >= 0.95


def test_scores_are_a_softmax_over_the_catalogue(unique_shop: SyntheticShop) -> None:
    data = unique_shop.data
    model = RECIPES["aws-user-personalization"].train(data)
    recs = model.recommend("u3", None, 500)
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)
    seen = {data.item_ids[i] for i in data.item_index[data.user_index == 3]}
    assert len(recs) == len(data.item_ids) - len(seen)  # everything but the user's own items
    assert sum(scores) == pytest.approx(1.0, abs=1e-4)


def test_already_interacted_items_are_left_out_when_repeats_are_rare(unique_shop: SyntheticShop) -> None:
    data = unique_shop.data
    model = RECIPES["aws-user-personalization"].train(data)
    assert model.exclude_seen
    for user in active_users(unique_shop)[:10]:
        seen = {data.item_ids[i] for i in data.item_index[data.user_index == user]}
        assert not seen & {r.item_id for r in model.recommend(f"u{user}", None, 25)}


def test_already_interacted_items_stay_when_users_repeat_themselves(shop: SyntheticShop) -> None:
    data = shop.data
    model = RECIPES["aws-user-personalization"].train(data)
    assert not model.exclude_seen
    user = active_users(shop, minimum=20)[0]
    seen = {data.item_ids[i] for i in data.item_index[data.user_index == user]}
    assert seen & {r.item_id for r in model.recommend(f"u{user}", None, 25)}


@pytest.mark.parametrize("algorithm", ["ease", "ials"])
def test_new_events_change_recommendations_without_retraining(shop: SyntheticShop, algorithm: str) -> None:
    model = RECIPES["aws-user-personalization"].train(
        shop.data, TrainingConfig(hyperparameters={"local_algorithm": algorithm})
    )
    user = next(u for u in active_users(shop) if shop.user_topic[u] == 0)
    other_topic_items = np.flatnonzero(shop.item_topic == 3)[:15]
    before = [r.item_id for r in model.recommend(f"u{user}", None, 10)]
    for step, item in enumerate(other_topic_items):
        model.observe(f"u{user}", f"i{item}", 2e9 + step, "click")
    after = [r.item_id for r in model.recommend(f"u{user}", None, 10)]

    def share_of_topic_3(items: list[str]) -> float:
        return float(np.mean([shop.item_topic[int(i[1:])] == 3 for i in items]))

    assert after != before
    # A heavy user (90 events in topic 0) turns towards topic 3: EASE strongly, iALS's low-rank fit less.
    assert share_of_topic_3(after) >= share_of_topic_3(before) + 0.15


def test_unknown_users_get_popular_items_then_their_session(shop: SyntheticShop) -> None:
    model = RECIPES["aws-user-personalization"].train(shop.data)
    popular = [r.item_id for r in RECIPES["aws-popularity-count"].train(shop.data).recommend(None, None, 10)]
    assert [r.item_id for r in model.recommend("stranger", None, 10)] == popular
    from local_personalize.recipes import SessionEvent

    session = [SessionEvent(f"i{i}", "click") for i in np.flatnonzero(shop.item_topic == 2)[:5]]
    anonymous = [r.item_id for r in model.recommend(None, None, 10, session_events=session)]
    assert np.mean([shop.item_topic[int(i[1:])] == 2 for i in anonymous]) >= 0.8
    model.observe("newcomer", session[0].item_id, 2e9, "click")  # a user unknown at training
    assert [r.item_id for r in model.recommend("newcomer", None, 10)] != popular


def test_batch_matches_single_requests(shop: SyntheticShop) -> None:
    from local_personalize.recipes import Exploration

    data, fresh = with_new_items(shop)
    model = RECIPES["aws-user-personalization"].train(data)
    users = [f"u{u}" for u in range(0, 800, 13)] + ["stranger"]
    masks = np.random.default_rng(0).random((len(users), len(shop.data.item_ids))) < 0.7
    exploration = Exploration(weight=0.5, item_age_cutoff_days=30)
    assert set(fresh) & {r.item_id for r in model.recommend("u0", None, 8, exploration=exploration)}
    for kwargs in ({}, {"candidates": masks[0]}, {"exploration": exploration}):
        batch = model.recommend_batch(users, 8, **kwargs)
        for user, recs in zip(users, batch):
            single = model.recommend(user, None, 8, **kwargs)
            assert [r.item_id for r in recs] == [r.item_id for r in single]
            assert [r.score for r in recs] == pytest.approx([r.score for r in single], rel=1e-4)
    batch = model.recommend_batch(users, 8, candidates=masks)  # one mask per user (per-line filterValues)
    for row, (user, recs) in enumerate(zip(users, batch)):
        assert [r.item_id for r in recs] == [r.item_id for r in model.recommend(user, None, 8, candidates=masks[row])]


def test_ranking_orders_input_and_puts_unknown_items_last(shop: SyntheticShop) -> None:
    user = next(u for u in active_users(shop) if shop.user_topic[u] == 1)
    in_topic = [f"i{i}" for i in np.flatnonzero(shop.item_topic == 1)[5:8]]
    off_topic = [f"i{i}" for i in np.flatnonzero(shop.item_topic == 3)[5:8]]
    inputs = off_topic + ["brand-new"] + in_topic
    v1 = RECIPES["aws-personalized-ranking"].train(shop.data)
    ranked = v1.rank(f"u{user}", inputs)
    assert {r.item_id for r in ranked[:3]} == set(in_topic)
    assert ranked[-1] == ("brand-new", 0.0, None)
    assert sum(r.score for r in ranked) == pytest.approx(1.0)
    v2 = RECIPES["aws-personalized-ranking-v2"].train(shop.data)
    assert v2.rank(f"u{user}", inputs)[-1].score is None
    mask = np.ones(len(shop.data.item_ids), bool)
    mask[int(in_topic[0][1:])] = False
    assert in_topic[0] not in [r.item_id for r in v1.rank(f"u{user}", inputs, candidates=mask)]


def with_new_items(shop: SyntheticShop) -> tuple[TrainingData, list[str]]:
    """The shop's data where every item is old except the five least popular of topic 3, a day old."""
    from local_personalize.synthetic import START_TS

    data = shop.data
    newest = float(data.timestamp.max())
    metadata = {item_id: {"CREATION_TIMESTAMP": START_TS - 400 * 86_400} for item_id in data.item_ids}
    fresh = [f"i{i}" for i in np.flatnonzero(shop.item_topic == 3)[-5:]]
    for item_id in fresh:
        metadata[item_id] = {"CREATION_TIMESTAMP": newest - 86_400}
    return TrainingData(**{**data.__dict__, "item_metadata": metadata}), fresh


def test_exploration_brings_in_new_items_and_v2_says_why(shop: SyntheticShop) -> None:
    from local_personalize.recipes import Exploration

    with_ages, fresh = with_new_items(shop)
    user = next(u for u in active_users(shop) if shop.user_topic[u] == 0)
    for name in ("aws-user-personalization", "aws-user-personalization-v2"):
        model = RECIPES[name].train(with_ages)
        plain = model.recommend(f"u{user}", None, 20, exploration=Exploration(weight=0.0))
        explored = model.recommend(f"u{user}", None, 20, exploration=Exploration(weight=1.0, item_age_cutoff_days=30))
        assert not {r.item_id for r in plain} & set(fresh)
        assert len(explored) == 20  # 10 exploration slots, only 5 items are new: relevant ones fill the rest
        assert len([r for r in explored if r.item_id in fresh]) == 5
        assert [r.score for r in explored] == sorted(r.score for r in explored)[::-1]
        reasons = {r.reason for r in explored if r.item_id in fresh}
        assert reasons == ({"Exploration"} if name.endswith("-v2") else {None})


def test_sims_neighbours_follow_co_occurrence_with_popularity_discount(shop: SyntheticShop) -> None:
    data = shop.data
    model = RECIPES["aws-sims"].train(data, TrainingConfig(hyperparameters={"min_cointeraction_count": "2"}))
    query = int(np.flatnonzero(shop.item_topic == 2)[4])
    related = model.recommend(None, f"i{query}", 10)
    assert f"i{query}" not in [r.item_id for r in related]
    assert np.mean([shop.item_topic[int(r.item_id[1:])] == 2 for r in related]) >= 0.9
    # The stored score is C_ij / n_j^0.5 over distinct users, recomputed here by brute force.
    users_of = [set(data.user_index[data.item_index == i].tolist()) for i in range(len(data.item_ids))]
    best = int(model.related(f"i{query}")[0][1:])
    expected = {j: len(users_of[query] & users_of[j]) / len(users_of[j]) ** 0.5
                for j in range(len(users_of)) if j != query and users_of[j] and len(users_of[query] & users_of[j]) >= 2}
    assert best == max(expected, key=expected.get)


def test_sims_falls_back_to_popular_items(shop: SyntheticShop) -> None:
    model = RECIPES["aws-sims"].train(shop.data)
    popular = [r.item_id for r in RECIPES["aws-popularity-count"].train(shop.data).recommend(None, None, 5)]
    assert [r.item_id for r in model.recommend(None, "unknown-item", 5)] == popular
    strict = RECIPES["aws-sims"].train(shop.data, TrainingConfig(hyperparameters={"min_cointeraction_count": "10"}))
    assert len(strict.recommend(None, "i0", 400)) == 199  # neighbours first, popular items fill the rest


def test_trending_prefers_growth_and_takes_new_items_from_events(shop: SyntheticShop) -> None:
    data = shop.data
    newest = float(data.timestamp.max())
    model = RECIPES["aws-trending-now"].train(data, TrainingConfig(hyperparameters={"trend_discovery_frequency": "1 day"}))
    for n in range(30):
        model.observe(f"u{n}", "i199", newest + 60 + n, "click")
    assert model.recommend(None, None, 1)[0].item_id == "i199"
    for n in range(60):
        model.observe(f"u{n}", "launch-item", newest + 120 + n, "click")  # unknown at training
    assert model.recommend(None, None, 1)[0].item_id == "launch-item"
    with pytest.raises(TrainingError, match="trend_discovery_frequency"):
        RECIPES["aws-trending-now"].train(data, TrainingConfig(hyperparameters={"trend_discovery_frequency": "weekly"}))


def test_item_affinity_finds_the_items_audience(shop: SyntheticShop) -> None:
    model = RECIPES["aws-item-affinity"].train(shop.data)
    item = int(np.flatnonzero(shop.item_topic == 1)[2])
    segment = model.users_for_item(f"i{item}", 30)
    users = [int(r.item_id[1:]) for r in segment]
    assert np.mean(shop.user_topic[users] == 1) >= 0.9
    already = set(shop.data.user_index[shop.data.item_index == item].tolist())
    assert not already & set(users)
    allowed = np.zeros(len(shop.data.user_ids), bool)
    allowed[users[5:]] = True
    assert {int(r.item_id[1:]) for r in model.users_for_item(f"i{item}", 30, candidate_users=allowed)} <= set(users[5:]) | set(np.flatnonzero(allowed))
    with pytest.raises(LookupError):
        model.users_for_item("never-seen", 5)


def test_item_attribute_affinity_finds_the_attributes_audience(shop: SyntheticShop) -> None:
    model = RECIPES["aws-item-attribute-affinity"].train(shop.data)
    items = {f"i{i}": {"ITEM_ID": f"i{i}", "TOPIC": f"t{shop.item_topic[i]}|all"} for i in range(len(shop.item_topic))}
    mask = matching_items('ITEMS.TOPIC = "t1" AND ITEMS.topic = "all"', model.item_ids, items)
    assert mask.sum() == np.sum(shop.item_topic == 1)
    users = [int(r.item_id[1:]) for r in model.users_for_items(mask, 30)]
    assert len(users) == 30 and np.mean(shop.user_topic[users] == 1) >= 0.9
    assert not matching_items('ITEMS.TOPIC = "t1" AND ITEMS.TOPIC = "t2"', model.item_ids, items).any()
    assert model.users_for_items(np.zeros(len(model.item_ids), bool), 5) == []
    assert parse_query(r'ITEMS.genres = "Say \"hi\"" and ITEMS.X = "a"') == [("GENRES", 'Say "hi"'), ("X", "a")]
    for bad in ("GENRE = 'x'", 'ITEMS.GENRE = "x" OR ITEMS.GENRE = "y"', 'ITEMS.GENRE = "x" AND'):
        with pytest.raises(ValueError):
            parse_query(bad)


@pytest.mark.parametrize("name", sorted(name for name, recipe in RECIPES.items() if recipe.domain is None))
def test_save_and_load_give_the_same_answers(shop: SyntheticShop, name: str, tmp_path) -> None:
    data = shop.data
    if RECIPES[name].recipe_type is RecipeType.PERSONALIZED_ACTIONS:  # trains on TAKEN action interactions
        data = dataclasses.replace(data, event_types=["TAKEN"] * len(data.event_types))
    model = RECIPES[name].train(data)
    path = str(tmp_path / "model.npz")
    model.save(path)
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.recipe_name == name and loaded.recipe_type == model.recipe_type
    assert loaded.recommend("u5", "i7", 15) == model.recommend("u5", "i7", 15)


def test_minimum_data_gate_names_the_shortfall(shop: SyntheticShop) -> None:
    small = TrainingData.from_rows(
        {"USER_ID": f"u{n % 50}", "ITEM_ID": f"i{n % 30}", "TIMESTAMP": n} for n in range(999)
    )
    with pytest.raises(TrainingError, match="at least 1000"):
        RECIPES["aws-popularity-count"].train(small)
    few_users = TrainingData.from_rows(
        {"USER_ID": f"u{n % 24}", "ITEM_ID": f"i{n % 30}", "TIMESTAMP": n} for n in range(2000)
    )
    with pytest.raises(TrainingError, match="fewer than 25 users"):
        RECIPES["aws-user-personalization"].train(few_users)


def test_event_selection_type_threshold_and_weights() -> None:
    rows = []
    for n in range(3000):
        rows.append({"USER_ID": f"u{n % 100}", "ITEM_ID": f"i{n % 40}", "TIMESTAMP": n,
                     "EVENT_TYPE": "purchase" if n % 3 == 0 else "click", "EVENT_VALUE": float(n % 5)})
    data = TrainingData.from_rows(rows)
    config = TrainingConfig.from_solution("purchase", {"eventValueThreshold": "2"})
    assert config.event_type == "purchase" and config.event_value_threshold == 2.0
    model = RECIPES["aws-popularity-count"].train(data, TrainingConfig(event_type="purchase"))
    assert set(model.counts.nonzero()[0]) == {i for i in range(40) if any(n % 40 == i and n % 3 == 0 for n in range(3000))}
    with pytest.raises(TrainingError, match="not enough interactions"):
        RECIPES["aws-popularity-count"].train(data, TrainingConfig(event_type="purchase", event_value_threshold=4.5))
    weighted = TrainingConfig.from_solution(None, {"eventsConfig": {"eventParametersList": [
        {"eventType": "click", "weight": 0.5}, {"eventType": "purchase", "eventValueThreshold": 1, "weight": 1.0}]},
        "algorithmHyperParameters": {"local_algorithm": "ease"}})
    model = RECIPES["aws-user-personalization"].train(data, weighted)
    assert model.selector.weight("click", None) == 0.5
    assert model.selector.weight("purchase", 0.0) is None and model.selector.weight("purchase", 3.0) == 1.0
    assert model.selector.weight("view", 3.0) is None


@pytest.mark.parametrize("params, message", [
    ({"popularity_discount_factor": "2"}, "between 0.0 and 1.0"),
    ({"popularity_discount_factor": "lots"}, "must be a number"),
    ({"min_cointeraction_count": "11"}, "min_cointeraction_count"),
])
def test_bad_sims_hyperparameters_fail_training(shop: SyntheticShop, params: dict, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        RECIPES["aws-sims"].train(shop.data, TrainingConfig(hyperparameters=params))


def test_bad_personalization_hyperparameters_fail_training(shop: SyntheticShop) -> None:
    with pytest.raises(TrainingError, match="recency_mask"):
        RECIPES["aws-user-personalization"].train(shop.data, TrainingConfig(hyperparameters={"recency_mask": "maybe"}))
    with pytest.raises(TrainingError, match="local_algorithm"):
        RECIPES["aws-user-personalization"].train(shop.data, TrainingConfig(hyperparameters={"local_algorithm": "bert"}))


def test_seen_items_stay_out_for_users_with_very_long_histories() -> None:
    from local_personalize.recipes.personalization.history import MAX_HISTORY

    rng = np.random.default_rng(5)
    rows = [{"USER_ID": "heavy", "ITEM_ID": f"i{n}", "TIMESTAMP": n} for n in range(MAX_HISTORY + 200)]
    rows += [{"USER_ID": f"u{n % 60}", "ITEM_ID": f"i{rng.integers(0, 900)}", "TIMESTAMP": n} for n in range(3000)]
    model = RECIPES["aws-user-personalization"].train(TrainingData.from_rows(rows))
    assert model.exclude_seen
    seen = {f"i{n}" for n in range(MAX_HISTORY + 200)}
    assert not seen & {r.item_id for r in model.recommend("heavy", None, 100)}
    assert not seen & {r.item_id for r in model.recommend_batch(["heavy", "u1"], 100)[0]}
