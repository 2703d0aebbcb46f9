"""A job whose input is "users active in the last 7 days", end to end against real services.

The hub's identity stage records activity in a real Redis identity store; the run (eager driver, the
same steps a worker runs) lists those users into the batch input on moto S3, local_personalize runs
the batch job over HTTP, and the export goes to a file and to email, which has no address for them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from personalize_hub.config import parse_config
from hub.events import Event, EventKind, SourceRef
from tests.integration.workers_support import hub_config, isolated_redis_url, s3_client, train_shop
from workers import context, steps
from workers.app import configure
from workers.driver import run_eagerly

pytestmark = pytest.mark.integration
REDIS_DB = 10
DAY = 86_400


@pytest.fixture(scope="module")
def shop(local_personalize_url, aws_endpoint_url, aws_region):
    s3 = s3_client(aws_endpoint_url, aws_region)
    bucket = "workers-active-users-shop"
    s3.create_bucket(Bucket=bucket)
    return train_shop(local_personalize_url, s3, bucket, name="active-users-shop", num_users=100, num_items=40)


@pytest.fixture
def configure_job(redis_url, aws_endpoint_url, shop):
    """Point this process's workers at a config with one job and the given identity section."""
    jobs_redis = isolated_redis_url(redis_url, REDIS_DB)

    def apply(job: dict, identity: dict):
        config = parse_config({**hub_config(redis_url=jobs_redis, aws_endpoint_url=aws_endpoint_url,
                                            personalize_url=shop.url, bucket=shop.bucket, jobs=[job]),
                               "identity": identity})
        configure(config)
        return config
    yield apply
    context.set_config(None)


def visit(n: int, user: str | None, days_ago: float, kind: EventKind = EventKind.INTERACTION) -> Event:
    return Event(kind=kind, source=SourceRef(source_id="web", message_id=f"m{n}"), name="Product Viewed",
                 timestamp=time.time() - days_ago * DAY, call="track", user_id=user, anonymous_id=f"device-{n}")


def record_activity(config, events: list[Event]) -> None:
    """What the running hub does with these events: its identity stage stitches them (and notes activity)."""
    async def run() -> None:
        stage = config.identity.build()
        await stage.apply(events)
        await stage.close()
    asyncio.run(run())


def test_users_active_in_the_last_7_days_get_recommendations(shop, configure_job, redis_url, unique_name, tmp_path):
    export, mail = tmp_path / "export.jsonl", tmp_path / "mail"
    name = unique_name("active").replace("-", "_")
    config = configure_job(
        {"name": name, "recipe": "user_recommendations", "solution_version_arn": shop.solution_version_arn,
         "input": {"active_in_last_days": 7}, "num_results": 5,
         "destinations": [{"type": "file", "id": "file", "path": str(export)},
                          {"type": "email", "id": "email", "from_address": "shop@example.com",
                           "transport": {"kind": "pickup", "directory": str(mail)}}]},
        {"store": {"type": "redis", "url": redis_url, "namespace": f"test-{uuid.uuid4().hex[:12]}"}})
    record_activity(config, [
        *(visit(n, f"u{n}", days_ago=1 + n % 5) for n in range(20)),  # active this week
        *(visit(n, f"u{n}", days_ago=10) for n in range(20, 30)),  # only before the window
        visit(30, "u30", days_ago=1, kind=EventKind.IDENTIFY),  # a trait update is not activity
        visit(31, None, days_ago=1),  # anonymous
    ])

    # Partial, not failed: every user reached the file; the email destination refused them, counted below.
    assert run_eagerly(name, f"{name}-1", sleep=lambda secs: None).value == "partial", steps.runs().get(f"{name}-1")
    report = steps.runs().report(f"{name}-1")
    assert report.users_in == 20 and report.fields["input_rejected"] == "0"
    exported = [json.loads(line) for line in export.read_text().splitlines()]
    assert sorted(e["userId"] for e in exported) == sorted(f"u{n}" for n in range(20))
    assert all(len(e["items"]) == 5 for e in exported)
    assert report.destinations["file"].sent == 20
    # No email is known for these users: the email destination refuses each with its reason, the run goes on.
    assert report.destinations["email"].sent == 0
    assert report.destinations["email"].failed == {"missing_email": 20}
    assert not mail.exists() or not any(mail.iterdir())


def test_a_job_without_a_shared_identity_store_fails_with_the_reason(shop, configure_job, unique_name):
    name = unique_name("active-memory").replace("-", "_")
    configure_job({"name": name, "recipe": "user_recommendations", "solution_version_arn": shop.solution_version_arn,
                   "input": {"active_in_last_days": 7}, "destinations": [{"type": "file", "path": "/dev/null"}]},
                  {"store": {"type": "memory"}})
    assert run_eagerly(name, f"{name}-1", sleep=lambda secs: None).value == "failed"
    error = steps.runs().get(f"{name}-1")["error"]
    assert "active_in_last_days" in error and "memory" in error and "sqlite or redis" in error
