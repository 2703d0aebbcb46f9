"""The `jobs:` and `workers:` config sections: what is accepted, and every problem named with its path."""

from __future__ import annotations

import pytest

from personalize_hub.config import parse_config
from hub.errors import ConfigError

VERSION = "arn:aws:personalize:us-east-1:000000000000:solution/s/1"


def config(job: dict | None = None, **workers) -> dict:
    base = {"name": "weekly", "recipe": "user_recommendations", "solution_version_arn": VERSION,
            "input": "file:///data/users.jsonl", "destinations": [{"type": "file", "path": "/tmp/out.jsonl"}]}
    return {"workers": {"redis_url": "redis://127.0.0.1:6379/0", "work_uri": "file:///tmp/work", **workers},
            "jobs": [{**base, **(job or {})}]}


def problems(tree: dict) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(tree)
    return str(err.value)


def test_a_job_with_defaults():
    job = parse_config(config({"schedule": "0 6 * * 1", "filter_values": {"CATEGORY": ["shoes", 'say "hi"'],
                                                                          "RAW": '"a","b"'}})).jobs[0]
    assert job.num_results == 25 and job.export_shards == 1 and job.recipe.input_key == "userId"
    assert job.filter_values == {"CATEGORY": '"shoes","say \\"hi\\""', "RAW": '"a","b"'}


@pytest.mark.parametrize(("job", "expected"), [
    ({"schedule": "0 6 * *"}, "5 fields"),
    ({"schedule": "61 * * * *"}, "schedule '61 * * * *'"),
    ({"campaign_arn": "arn:aws:personalize:us-east-1:000000000000:campaign/c"}, "exactly one of"),
    ({"solution_version_arn": None}, "exactly one of"),
    ({"num_results": 501}, "exceeds 500"),
    ({"recipe": "related_items", "input": {"active_in_last_days": 7}}, "only for user_recommendations"),
    ({"name": "has space"}, "jobs[0].name"),
    ({"filter_values": {"$BAD": "x"}}, "without $"),
    ({"filter_values": {f"K{i}": "x" for i in range(26)}}, "at most 25"),
    ({"destinations": [{"type": "file", "id": "a", "path": "/x"}, {"type": "file", "id": "a", "path": "/y"}]},
     "unique within a job"),
    ({"unknown_key": 1}, "jobs[0].unknown_key: unknown key"),
])
def test_job_problems_are_named(job, expected):
    assert expected in problems(config(job))


def test_segments_may_ask_for_millions_of_users():
    job = parse_config(config({"recipe": "item_affinity", "num_results": 2_000_000, "input": "s3://b/items.jsonl"}))
    assert job.jobs[0].recipe.is_segment and job.jobs[0].recipe.input_key == "itemId"


def test_jobs_need_redis_and_a_work_folder():
    tree = config()
    del tree["workers"]["redis_url"], tree["workers"]["work_uri"]
    message = problems(tree)
    assert "workers.redis_url" in message and "jobs[0].work_uri" in message
    tree["jobs"][0]["work_uri"] = "s3://bucket/jobs"
    assert "work_uri" not in problems(tree)


def test_job_names_are_unique():
    tree = config()
    tree["jobs"].append(dict(tree["jobs"][0]))
    assert "job names must be unique" in problems(tree)


def test_timings_that_would_redeliver_a_running_task_are_refused():
    assert "below half of visibility_timeout_secs" in problems(config(export_slice_secs=400,
                                                                      visibility_timeout_secs=600))
    assert "poll_interval_secs must be below" in problems(config(poll_interval_secs=60, visibility_timeout_secs=30))


def test_no_jobs_no_requirements():
    assert parse_config({}).jobs == []


def test_a_recommender_arn_is_refused_where_aws_takes_only_a_solution_version():
    recommender_arn = "arn:aws:personalize:us-east-1:000000000000:recommender/for-you"
    job = {"name": "weekly", "recipe": "user_recommendations", "campaign_arn": recommender_arn,
           "input": "s3://bucket/users.jsonl", "destinations": [{"type": "file", "id": "out", "path": "out.jsonl"}]}
    with pytest.raises(ConfigError, match="is a recommender: batch inference and batch segment jobs run a solution"):
        parse_config({"jobs": [job]})
    train = {"name": "retrain", "recipe": "train", "solution_arn": "arn:aws:personalize:us-east-1:0:solution/s",
             "campaign_arn": recommender_arn}
    with pytest.raises(ConfigError, match="is a recommender: a training job moves a campaign"):
        parse_config({"jobs": [train]})
    with pytest.raises(ConfigError, match="at most 50 items"):
        parse_config({"recommendations": {"campaign_arn": recommender_arn, "metadata_columns": ["PRICE"]}})
