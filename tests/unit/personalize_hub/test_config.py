"""HubConfig: interpolation, defaults, and every problem reported at once with its path."""

from __future__ import annotations

import pytest

from hub.errors import ConfigError
from personalize_hub.config import interpolate, load_config, parse_config

MINIMAL = {
    "sources": [{"type": "segment_webhook", "write_keys": ["k"]}],
    "destinations": [{"type": "file", "path": "out.jsonl"}],
}


def test_interpolates_variables_and_defaults():
    env = {"KEY": "secret", "EMPTY": ""}
    tree = {"a": "${KEY}", "b": "x-${MISSING:-dflt}-y", "c": ["${EMPTY:-fallback}"], "d": "$${KEY}", "e": 5}
    assert interpolate(tree, env) == {"a": "secret", "b": "x-dflt-y", "c": ["fallback"], "d": "${KEY}", "e": 5}


def test_values_cannot_change_structure():
    assert interpolate({"a": "${V}"}, {"V": "{b: 1}\nc: 2"}) == {"a": "{b: 1}\nc: 2"}


def test_every_missing_variable_is_reported_with_its_path():
    with pytest.raises(ConfigError) as err:
        interpolate({"x": {"y": "${ONE}"}, "z": ["${TWO}", "${ONE}"]}, {})
    assert err.value.problems == [
        "x.y: environment variable ONE is not set",
        "z[0]: environment variable TWO is not set",
        "z[1]: environment variable ONE is not set",
    ]


def test_minimal_config_gets_defaults():
    config = parse_config(MINIMAL, {})
    assert config.http.host == "127.0.0.1"
    assert config.sources[0].id == "segment_webhook"
    assert config.dead_letter.type == "file"
    assert config.destinations[0].batch_policy().max_events == 500


def test_unknown_keys_missing_variables_and_limits_reported_together():
    data = {
        "sources": [{"type": "segment_webhook", "write_keys": ["${NOPE}"], "bogus": 1}],
        "destinations": [{"type": "file", "path": "o.jsonl", "batch": {"max_events": 10_000}}],
        "extra": True,
    }
    with pytest.raises(ConfigError) as err:
        parse_config(data, {})
    problems = err.value.problems
    assert "sources[0].write_keys[0]: environment variable NOPE is not set" in problems
    assert "sources[0].bogus: unknown key" in problems
    assert "extra: unknown key" in problems
    assert any(p.startswith("destinations[0]") and "exceeds the API limit 500" in p for p in problems)


def test_overrides_may_lower_limits():
    data = {**MINIMAL, "destinations": [{"type": "file", "path": "o", "batch": {"max_events": 7, "max_wait_secs": 1}}]}
    policy = parse_config(data, {}).destinations[0].batch_policy()
    assert (policy.max_events, policy.max_wait_secs) == (7, 1)


def test_duplicate_ids_rejected():
    data = {**MINIMAL, "destinations": [{"type": "file", "id": "a", "path": "1"}, {"type": "file", "id": "a", "path": "2"}]}
    with pytest.raises(ConfigError, match="repeated: a"):
        parse_config(data, {})


def test_write_keys_are_secret():
    data = {**MINIMAL, "sources": [{"type": "segment_webhook", "write_keys": ["s3cr3t-key"]}]}
    config = parse_config(data, {})
    assert "s3cr3t-key" not in repr(config) and "s3cr3t-key" not in config.model_dump_json()


def test_load_config_reports_yaml_and_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listy)


def test_examples_validate(monkeypatch):
    from pathlib import Path

    root = Path(__file__).parents[3] / "examples"
    for name in ("SEGMENT_WRITE_KEY", "MPARTICLE_API_KEY", "MPARTICLE_API_SECRET", "PERSONALIZE_TRACKING_ID",
                 "KAFKA_BOOTSTRAP", "EXPORT_BUCKET", "PERSONALIZE_SOLUTION_VERSION_ARN", "CAMPAIGN_USERS_URI",
                 "ITEMS_CATALOG_URI", "BRAZE_REST_URL", "BRAZE_API_KEY", "SMTP_HOST", "SMTP_PORT"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("PERSONALIZE_ITEMS_DATASET_ARN", "arn:aws:personalize:us-east-1:000000000000:dataset/shop/ITEMS")
    monkeypatch.setenv("PERSONALIZE_USERS_DATASET_ARN", "arn:aws:personalize:us-east-1:000000000000:dataset/shop/USERS")
    monkeypatch.chdir(root.parent)  # examples name their schema files relative to the repository
    for example in sorted(root.glob("*.yaml")):
        config = load_config(example)
        assert config.sources or config.jobs, example.name


def test_one_redis_block_is_the_default_of_every_redis_user():
    config = parse_config({
        "redis": {"url": "redis://shared:6379/0"},
        "identity": {"store": {"type": "redis"}},
        "readiness": {"store": "redis"},
        "recommendations": {"enabled": True},
        "workers": {"work_uri": "file:///tmp/jobs"},
        "jobs": [{"name": "weekly", "recipe": "user_recommendations", "campaign_arn": "arn:c", "input": "s3://b/u",
                  "destinations": [{"type": "recommendation_store", "id": "store"}]}],
    }, {})
    assert config.identity.store.url.get_secret_value() == "redis://shared:6379/0"
    assert config.readiness.redis_url == config.recommendations.redis_url == config.workers.redis_url
    assert config.jobs[0].destinations[0].redis_url == "redis://shared:6379/0"
    assert config.redis.url.get_secret_value() == "redis://shared:6379/0"


def test_a_section_s_own_redis_url_wins_over_the_shared_block():
    config = parse_config({"redis": {"url": "redis://shared/0"}, "workers": {"redis_url": "redis://jobs/1"}}, {})
    assert config.workers.redis_url == "redis://jobs/1"
    assert config.readiness.redis_url == "redis://shared/0"


def test_the_lifecycle_journal_is_kept_beside_the_runs_before_the_shared_redis():
    # NotificationsConfig.redis_url's description: workers.redis_url (where runs are kept), else redis.url.
    both = parse_config({"redis": {"url": "redis://shared/0"}, "workers": {"redis_url": "redis://jobs/1"}}, {})
    shared_only = parse_config({"redis": {"url": "redis://shared/0"}}, {})
    own = parse_config({"workers": {"redis_url": "redis://jobs/1"}, "notifications": {"redis_url": "redis://n/2"}}, {})
    assert (both.notifications.redis_url, shared_only.notifications.redis_url, own.notifications.redis_url) == (
        "redis://jobs/1", "redis://shared/0", "redis://n/2")


def test_an_export_destination_is_refused_among_streaming_ones():
    braze = {"type": "braze", "id": "b", "api_key": "k", "rest_url": "https://rest.iad-01.braze.com"}
    with pytest.raises(ConfigError) as err:
        parse_config({"destinations": [{"type": "file", "path": "/tmp/x"}, braze]}, {})
    assert str(err.value).count("destinations[") == 1  # `file` takes events and rows alike
    assert "destinations[1]: 'braze' is an export destination" in str(err.value)


def test_a_streaming_destination_is_refused_in_a_job():
    with pytest.raises(ConfigError) as err:
        parse_config({
            "workers": {"redis_url": "redis://r/0", "work_uri": "file:///tmp/jobs"},
            "jobs": [{"name": "weekly", "recipe": "user_recommendations", "campaign_arn": "arn:c", "input": "s3://b/u",
                      "destinations": [{"type": "file", "path": "/tmp/y"},
                                       {"type": "personalize_events", "tracking_id": "t"}]}],
        }, {})
    assert "jobs[0]" in str(err.value)
    assert "destinations[1]: 'personalize_events' is a streaming destination" in str(err.value)
    assert "destinations[0]" not in str(err.value)
def test_variables_work_unquoted_inside_flow_collections(tmp_path):
    config = tmp_path / "hub.yaml"
    config.write_text(
        "sources: [{type: segment_webhook, id: web, write_keys: [${KEY}, '${OTHER:-k2-default}']}]\n"
        "destinations: [{type: file, id: out, path: ${DIR:-var}/out.jsonl}]\n"
        "dead_letter: {type: file, path: \"${DIR:-var}/dlq.jsonl\"}  # ${IN_A_COMMENT}\n"
    )
    loaded = load_config(config, {"KEY": "k1-from-env", "DIR": "/tmp/d"})
    assert [k.get_secret_value() for k in loaded.sources[0].write_keys] == ["k1-from-env", "k2-default"]
    assert str(loaded.destinations[0].path) == "/tmp/d/out.jsonl" and str(loaded.dead_letter.path) == "/tmp/d/dlq.jsonl"


def test_env_file_fills_what_the_environment_leaves_unset(tmp_path):
    env_file = tmp_path / "hub.env"
    env_file.write_text("# written by hub bootstrap\nKEY=from-file\nDIR=/from/file\n")
    config = tmp_path / "hub.yaml"
    config.write_text("sources: [{type: segment_webhook, write_keys: [${KEY}]}]\n"
                      "dead_letter: {type: file, path: ${DIR}/dlq.jsonl}\n")
    loaded = load_config(config, {"HUB_ENV_FILE": str(env_file), "DIR": "/from/env"})
    assert loaded.sources[0].write_keys[0].get_secret_value() == "from-file"
    assert str(loaded.dead_letter.path) == "/from/env/dlq.jsonl"  # the environment wins
    with pytest.raises(ConfigError, match="HUB_ENV_FILE"):
        load_config(config, {"HUB_ENV_FILE": str(tmp_path / "absent.env")})
