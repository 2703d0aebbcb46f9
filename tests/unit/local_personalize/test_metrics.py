"""GetSolutionMetrics definitions (docs/reference/personalize-api.md#solution-metrics) against hand-computed cases, and the split."""

from __future__ import annotations

import math

import numpy as np
import pytest

from local_personalize.metrics import evaluate, metric_names, personalize_split, ranking_metrics
from local_personalize.recipes import RECIPES, TrainingConfig, TrainingData
from local_personalize.synthetic import generate


def test_worked_ndcg_example_from_the_reference() -> None:
    # Relevant items at ranks 2 and 5 (two relevant in all): (1/log3 + 1/log6) / (1/log2 + 1/log3) = 0.6241.
    metrics = ranking_metrics([["x", "r1", "y", "z", "r2"]], [{"r1", "r2"}], catalogue_size=10)
    assert metrics["normalized_discounted_cumulative_gain_at_5"] == pytest.approx(0.6241, abs=1e-4)
    assert metrics["precision_at_5"] == pytest.approx(2 / 5)
    assert metrics["precision_at_10"] == pytest.approx(2 / 10)
    assert metrics["mean_reciprocal_rank_at_25"] == pytest.approx(1 / 2)
    assert metrics["coverage"] == pytest.approx(5 / 10)


def test_averages_over_users_and_cutoffs() -> None:
    recommended = [["a"] + [f"f{n}" for n in range(24)], [f"g{n}" for n in range(24)] + ["b"]]
    relevant = [{"a"}, {"b", "c"}]
    metrics = ranking_metrics(recommended, relevant, catalogue_size=100)
    assert metrics["mean_reciprocal_rank_at_25"] == pytest.approx((1 + 1 / 25) / 2)
    assert metrics["normalized_discounted_cumulative_gain_at_10"] == pytest.approx(0.5)  # user 2 has no hit in 10
    ideal_two = 1 / math.log(2) + 1 / math.log(3)
    assert metrics["normalized_discounted_cumulative_gain_at_25"] == pytest.approx((1 + (1 / math.log(26)) / ideal_two) / 2)
    assert metrics["precision_at_25"] == pytest.approx((1 / 25 + 1 / 25) / 2)
    assert metrics["precision_at_5"] == pytest.approx(0.1)
    assert metrics["coverage"] == pytest.approx(50 / 100)
    assert set(metrics) == set(metric_names())


def test_personalize_split_holds_out_the_newest_tenth_of_a_tenth_of_users() -> None:
    rows = [{"USER_ID": f"u{u}", "ITEM_ID": f"i{(u + n) % 50}", "TIMESTAMP": 1000 * u + n}
            for u in range(200) for n in range(20)]
    data = TrainingData.from_rows(rows)
    split = personalize_split(data, seed=3)
    assert len(split.test_users) == 20
    assert split.train.num_interactions == data.num_interactions - 20 * 2  # newest 10 % of 20 events each
    for user, relevant, query in zip(split.test_users, split.relevant, split.query_items):
        u = int(user[1:])
        assert relevant == {f"i{(u + 18) % 50}", f"i{(u + 19) % 50}"}
        assert query == f"i{(u + 17) % 50}"
    assert personalize_split(data, seed=3).test_users == split.test_users  # deterministic per seed


def test_users_with_little_history_keep_at_least_one_target() -> None:
    rows = [{"USER_ID": f"u{u}", "ITEM_ID": f"i{n}", "TIMESTAMP": n} for u in range(300) for n in range(3)]
    split = personalize_split(TrainingData.from_rows(rows))
    assert all(relevant == {"i2"} for relevant in split.relevant)


def test_personalization_beats_popularity_on_planted_structure() -> None:
    data = generate(num_users=1000, num_items=300, num_interactions=25_000, num_topics=6, unique_pairs=True).data
    popularity = evaluate(RECIPES["aws-popularity-count"], data)
    personal = evaluate(RECIPES["aws-user-personalization"], data)
    assert set(personal) == set(metric_names())
    assert all(0.0 <= value <= 1.0 for value in personal.values())
    ndcg = "normalized_discounted_cumulative_gain_at_10"
    assert personal[ndcg] > 1.5 * popularity[ndcg]
    assert personal["coverage"] > popularity["coverage"]  # one list for all vs. a list per user


def test_sims_and_segments_are_evaluated_their_own_way() -> None:
    data = generate(num_users=1000, num_items=300, num_interactions=25_000, num_topics=6, unique_pairs=True).data
    sims = evaluate(RECIPES["aws-sims"], data, TrainingConfig())
    assert sims["precision_at_5"] > 0
    segments = evaluate(RECIPES["aws-item-affinity"], data)
    assert set(segments) == {"hit", "recall"} and 0 < segments["recall"] <= segments["hit"] <= 1
    assert np.isfinite(list(segments.values())).all()
