"""Context lifts (context.py): reranking by log(score) + lift, and what leaves a list alone."""

from __future__ import annotations

import numpy as np
import pytest

from local_personalize.context import field_key, rerank
from local_personalize.recipes import Recommendation

POSITIONS = {"a": 0, "b": 1, "c": 2}
LIFTS = {"DEVICE=phone": np.log(np.array([0.25, 1.0, 4.0], np.float32))}


@pytest.mark.parametrize("raw, key", [("DEVICE", "DEVICE"), ("device", "DEVICE"), ("deviceType", "DEVICE_TYPE"),
                                      ("DEVICE_TYPE", "DEVICE_TYPE")])
def test_field_names_are_read_as_schema_fields(raw, key) -> None:
    assert field_key(raw) == key


def test_scores_multiply_by_the_lift_and_stay_a_distribution() -> None:
    recs = [Recommendation("a", 0.5), Recommendation("b", 0.3), Recommendation("c", 0.2)]
    ranked = rerank(recs, {"device": "phone"}, LIFTS, POSITIONS, 3, with_scores=True)
    assert [r.item_id for r in ranked] == ["c", "b", "a"]  # 0.8, 0.3, 0.125 before normalising
    assert sum(r.score for r in ranked) == pytest.approx(1.0)
    assert ranked[0].score / ranked[1].score == pytest.approx(0.8 / 0.3, rel=1e-5)


def test_unscored_lists_rerank_by_position_and_unknown_context_changes_nothing() -> None:
    recs = [Recommendation("a", None), Recommendation("b", None), Recommendation("c", None)]
    assert [r.item_id for r in rerank(recs, {"DEVICE": "phone"}, LIFTS, POSITIONS, 2, False)] == ["c", "b"]
    assert rerank(recs, {"DEVICE": "tv"}, LIFTS, POSITIONS, 2, False) == recs[:2]
