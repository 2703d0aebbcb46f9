"""The retraining gate and the `recipe: train` job config."""

from __future__ import annotations

import pytest

from personalize_hub.config import ConfigError, parse_config
from personalize_hub.jobs import GateConfig, TrainJobConfig
from workers.schedules import beat_schedule, start_task_name
from workers.training import gate_decision

METRIC = "normalized_discounted_cumulative_gain_at_10"


def test_the_gate_passes_within_the_allowed_drop_and_says_why():
    gate = GateConfig(metric=METRIC, max_drop=0.05)
    passed, why = gate_decision(gate, {METRIC: 0.19}, {METRIC: 0.2})
    assert passed and why == f"{METRIC} 0.1900 >= 0.1900 (serving 0.2000, max drop 5%)"
    passed, why = gate_decision(gate, {METRIC: 0.18}, {METRIC: 0.2})
    assert not passed and why.startswith(f"{METRIC} 0.1800 < 0.1900")


def test_the_gate_fails_without_the_metric_and_passes_without_anything_to_compare():
    gate = GateConfig(metric="coverage", max_drop=0.0)
    assert gate_decision(gate, {METRIC: 0.3}, {"coverage": 0.5}) == (
        False, f"coverage is not among the new version's metrics ({METRIC})")
    assert gate_decision(gate, {"coverage": 0.1}, {}) == (True, "the serving version reports no coverage to compare with")
    assert gate_decision(None, {}, None) == (True, "no gate configured")


def config(*jobs: dict) -> object:
    return parse_config({"workers": {"redis_url": "redis://127.0.0.1:1/0", "work_uri": "s3://b/w"}, "jobs": list(jobs)})


def test_train_jobs_are_scheduled_on_their_own_task():
    loaded = config({"name": "weekly", "recipe": "train", "solution_arn": "arn:aws:personalize:::solution/s",
                     "schedule": "0 3 * * 1", "training_mode": "UPDATE"})
    job = loaded.jobs[0]
    assert isinstance(job, TrainJobConfig) and job.training_mode == "UPDATE"
    assert start_task_name(job) == "training.start"
    assert beat_schedule(loaded.jobs)["job:weekly"]["task"] == "training.start"


@pytest.mark.parametrize(("job", "expected"), [
    ({"name": "t", "recipe": "train", "solution_arn": "s", "gate": {"max_drop": 0.1}},
     "jobs[0]: Value error, a gate compares with the version a campaign serves: set campaign_arn"),
    ({"name": "t", "recipe": "train", "solution_arn": "s", "training_mode": "AUTO"}, "jobs[0].training_mode"),
    ({"name": "b", "recipe": "user_recommendations", "solution_arn": "s", "input": "s3://b/u",
      "destinations": [{"type": "file", "id": "f", "path": "/tmp/f"}]},
     "solution_arn and version: latest_active go together"),
    ({"name": "b", "recipe": "user_recommendations", "solution_arn": "s", "version": "latest_active",
      "campaign_arn": "c", "input": "s3://b/u", "destinations": [{"type": "file", "id": "f", "path": "/tmp/f"}]},
     "give exactly one of solution_version_arn, campaign_arn and solution_arn"),
])
def test_job_config_problems_are_named(job, expected):
    with pytest.raises(ConfigError) as caught:
        config(job)
    assert expected in str(caught.value)


def test_jobs_list_shows_training_jobs_beside_batch_jobs(tmp_path):
    import yaml
    from click.testing import CliRunner

    from personalize_hub.cli import main

    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump({
        "workers": {"redis_url": "redis://127.0.0.1:1/0", "work_uri": "s3://b/w"},
        "jobs": [{"name": "weekly_retrain", "recipe": "train", "solution_arn": "arn:aws:personalize:::solution/s",
                  "schedule": "0 3 * * 1"}]}))
    result = CliRunner().invoke(main, ["jobs", "list", "--config", str(path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "weekly_retrain" in result.output and "train" in result.output and "0 3 * * 1" in result.output
