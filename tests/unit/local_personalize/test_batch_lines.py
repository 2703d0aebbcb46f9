"""Batch job line handling (docs/reference/personalize-api.md#batch-inference-jobs): output shape per recipe type and error lines."""

from __future__ import annotations

import orjson
import pytest

from local_personalize.batch import process_file, recent_interactions, _inference_line
from local_personalize.recipes import Exploration, Recommendation, RecipeType


class FakeModel:
    """Recommends the catalogue in order; records how it was called (vectorised or per line)."""

    recipe_name = "fake"
    item_ids = ["a", "b", "c", "d"]

    def __init__(self, recipe_type: RecipeType, with_scores: bool = True) -> None:
        self.recipe_type, self.with_scores, self.batch_calls = recipe_type, with_scores, 0

    def recommend(self, user_id=None, item_id=None, num_results=25, **_):
        return [Recommendation(item, 0.5 / (n + 1)) for n, item in enumerate(self.item_ids) if item != item_id][
            :num_results]

    def recommend_batch(self, user_ids, num_results=25, **_):
        self.batch_calls += 1
        return [self.recommend(user, None, num_results) for user in user_ids]

    def rank(self, user_id, item_ids, **_):
        return [Recommendation(item, 1 / len(item_ids)) for item in sorted(item_ids)]


class FakeJob:
    filter = None

    def __init__(self, model):
        self.model = model

    def candidates(self, line):
        return None

    def user(self, user_id):
        return user_id


def run(model, lines, vectorise=False):
    text = "\n".join(lines)
    out = process_file(FakeJob(model), text, 2, Exploration(), _inference_line, vectorise)
    return [orjson.loads(line) for line in out.splitlines()]


def test_user_lines_have_items_scores_and_null_error():
    model = FakeModel(RecipeType.USER_PERSONALIZATION)
    records = run(model, ['{"userId": "u1"}', '{"userId": "u2"}'], vectorise=True)
    assert records[0] == {"input": {"userId": "u1"}, "output": {"recommendedItems": ["a", "b"], "scores": [0.5, 0.25]},
                          "error": None}
    assert model.batch_calls == 1


def test_related_items_have_no_scores():
    records = run(FakeModel(RecipeType.RELATED_ITEMS, with_scores=False), ['{"itemId": "a"}'])
    assert records == [{"input": {"itemId": "a"}, "output": {"recommendedItems": ["b", "c"]}, "error": None}]


def test_ranking_lines_rank_the_item_list():
    records = run(FakeModel(RecipeType.PERSONALIZED_RANKING), ['{"userId": "u", "itemList": ["c", "a"]}'])
    assert records[0]["output"]["recommendedItems"] == ["a", "c"]


@pytest.mark.parametrize("line, expected_input, fragment", [
    ("{broken", "{broken", "not a JSON object"),
    ("[1, 2]", "[1, 2]", "not a JSON object"),
    ('{"itemId": "a"}', {"itemId": "a"}, "userId is required"),
])
def test_bad_lines_become_error_lines_and_the_rest_go_through(line, expected_input, fragment):
    records = run(FakeModel(RecipeType.USER_PERSONALIZATION), ['{"userId": "u1"}', line, '{"userId": "u2"}'],
                  vectorise=True)
    assert [r["error"] is None for r in records] == [True, False, True]
    assert records[1]["input"] == expected_input and fragment in records[1]["error"]
    assert "output" not in records[1]


def test_filters_see_the_newest_100_interactions_per_event_type():
    rows = [(f"i{n}", "click", 1000.0 - n, None) for n in range(150)] + [("p1", "purchase", 1.0, None)]
    kept = recent_interactions(rows)
    assert sum(1 for i in kept if i.event_type == "click") == 100
    assert kept[0].item_id == "i0" and ("p1", "purchase", 1.0) in kept
