"""Writing the batch input: one {"userId"} (or {"itemId"}) line per user, contacts kept aside, bad lines named."""

from __future__ import annotations

import io
import json

import pytest

from personalize_hub.config import parse_config
from workers import context, steps


class FakeRedis:
    """The pipeline calls prepare makes, kept in a dict."""

    def __init__(self):
        self.hashes: dict[str, dict] = {}

    def pipeline(self, transaction=True):
        return self

    def hset(self, key, mapping):
        self.hashes.setdefault(key, {}).update(mapping)

    def expire(self, key, secs):
        pass

    def execute(self):
        return []


@pytest.fixture
def fake_redis(monkeypatch):
    fake = FakeRedis()
    monkeypatch.setattr(context, "sync_redis", lambda: fake)
    yield fake
    context.set_config(None)


def job(**changes):
    config = parse_config({"workers": {"redis_url": "redis://x", "work_uri": "file:///w"}, "jobs": [{
        "name": "weekly", "recipe": "user_recommendations", "input": "file:///u.jsonl",
        "solution_version_arn": "arn:aws:personalize:us-east-1:0:solution/s/1",
        "destinations": [{"type": "file", "path": "/o"}], **changes}]})
    context.set_config(config)
    return config.jobs[0]


def lines(*records) -> list[bytes]:
    return [r if isinstance(r, bytes) else json.dumps(r).encode() for r in records]


def test_users_with_contacts(fake_redis):
    out = io.BytesIO()
    counts = steps._write_input(job(filter_values={"CATEGORY": ["shoes"]}), "run-1", iter(lines(
        {"userId": "u1", "email": "u1@shop.example", "firstName": "Ada"}, {"userId": "u2"}, b"not json",
        {"email": "nobody@shop.example"}, {"userId": 7})), out)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"userId": "u1", "filterValues": {"CATEGORY": '"shoes"'}}, {"userId": "u2", "filterValues": {"CATEGORY": '"shoes"'}}]
    assert counts["records"] == 2 and counts["rejected"] == 3 and counts["contacts"] == 1
    assert counts["problems"] == ["line 3: no userId string", "line 4: no userId string", "line 5: no userId string"]
    (contacts,) = fake_redis.hashes.values()
    assert json.loads(contacts["u1"]) == {"email": "u1@shop.example", "attributes": {"firstName": "Ada"}}


def test_segment_input_is_capped_at_500_queries(fake_redis):
    with pytest.raises(steps.RunFailed, match="500 records"):
        steps._write_input(job(recipe="item_affinity"), "run-1",
                           iter(lines(*({"itemId": f"i{i}"} for i in range(501)))), io.BytesIO())
