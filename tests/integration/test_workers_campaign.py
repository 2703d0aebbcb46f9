"""examples/campaign.yaml as a user runs it: `hub jobs run weekly_email --eager`, twice, into Braze and SMTP.

Real everything: local_personalize over HTTP (batch inference through moto S3), Redis, the Braze
stand-in over HTTP, the aiosmtpd server scripts/test starts. The second run finds the same
recommendations and sends nothing.
"""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys

import pytest
import redis

from tests.integration.workers_support import REPO, s3_client, train_shop, write_campaign_inputs

pytestmark = pytest.mark.integration
USERS = 40


@pytest.fixture(scope="module")
def shop(local_personalize_url, aws_endpoint_url, aws_region):
    s3 = s3_client(aws_endpoint_url, aws_region)
    bucket = "workers-campaign-shop"
    s3.create_bucket(Bucket=bucket)
    return train_shop(local_personalize_url, s3, bucket, name="campaign-shop")


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "personalize_hub.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def mail_to(maildir: str, skip: frozenset[str] = frozenset()) -> dict[str, list]:
    """The messages in the maildir by recipient, leaving out the keys in `skip` (mail other tests sent)."""
    received: dict[str, list] = {}
    box = mailbox.Maildir(maildir, factory=None, create=False)
    for key in box.keys():
        if key not in skip:
            received.setdefault(box[key]["To"], []).append(box[key])
    return received


def mail_keys(maildir) -> frozenset[str]:
    return frozenset(mailbox.Maildir(str(maildir), factory=None, create=False).keys()) if maildir.exists() else frozenset()


def test_campaign_runs_to_completion_and_a_second_run_sends_nothing(
        shop, braze_standin, smtp_server, redis_url, aws_endpoint_url, aws_region, unique_name, tmp_path):
    s3 = s3_client(aws_endpoint_url, aws_region)
    users_uri, catalog_uri = write_campaign_inputs(s3, shop.bucket, shop, USERS, prefix=unique_name("campaign"))
    export_bucket = unique_name("exports")
    s3.create_bucket(Bucket=export_bucket)
    env = {**os.environ, "REDIS_URL": redis_url, "AWS_ENDPOINT_URL": aws_endpoint_url,
           "PERSONALIZE_ENDPOINT_URL": shop.url, "PERSONALIZE_SOLUTION_VERSION_ARN": shop.solution_version_arn,
           "EXPORT_BUCKET": export_bucket, "BRAZE_REST_URL": braze_standin.url,
           "BRAZE_API_KEY": braze_standin.api_key, "SMTP_HOST": smtp_server.host, "SMTP_PORT": str(smtp_server.port),
           "HUB_HTTP_PORT": "0", "CAMPAIGN_USERS_URI": users_uri, "ITEMS_CATALOG_URI": catalog_uri}
    # The example's job name is fixed: forget what an earlier run against this Redis synced.
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("hub:jobs:sync:weekly_email:*"):
        client.delete(key)
    # The SMTP server is shared by the whole session: other tests mail the same addresses.
    mail_before = mail_keys(smtp_server.maildir)

    first = run_cli("jobs", "run", "weekly_email", "--config", "examples/campaign.yaml", "--eager", "--json", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    report = json.loads(first.stdout)
    assert report["state"] == "succeeded" and int(report["users_in"]) == USERS
    assert report["destinations"]["braze"]["sent"] == USERS
    assert report["destinations"]["email"]["sent"] == USERS
    assert report["lines_with_errors"] == {}

    # Braze: each profile holds the batch output's items in rank order, with the catalog's metadata.
    bucket, key = report["output_uri"].removeprefix("s3://").split("/", 1)
    output = [json.loads(line) for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()]
    ranked = next(line["output"]["recommendedItems"] for line in output if line["input"]["userId"] == "u3")
    profile = braze_standin.state.profiles["u3"]
    items = profile["recommended_items"]
    assert ranked and [item["id"] for item in items] == ranked == profile["recommended_item_ids"]
    number = int(items[0]["id"][1:])
    assert items[0]["name"] == f"Product {number}" and items[0]["url"] == f"https://shop.example/p/i{number}"
    # SMTP: one message per user, naming the items.
    received = mail_to(str(smtp_server.maildir), skip=mail_before)
    assert sum(len(v) for v in received.values()) >= USERS
    message = received["u3@shop.example"][-1]
    body = message.get_payload(0).get_payload(decode=True).decode() if message.is_multipart() else message.get_payload()
    assert all(item["name"] in body for item in items)

    writes_before = sum(braze_standin.state.attribute_writes.values())
    mail_count = sum(len(v) for v in mail_to(str(smtp_server.maildir)).values())
    second = run_cli("jobs", "run", "weekly_email", "--config", "examples/campaign.yaml", "--eager", "--json", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    again = json.loads(second.stdout)
    assert again["run_id"] != report["run_id"]
    for destination in ("braze", "email"):
        assert again["destinations"][destination]["sent"] == 0
        assert again["destinations"][destination]["unchanged"] == USERS
    assert sum(braze_standin.state.attribute_writes.values()) == writes_before
    assert sum(len(v) for v in mail_to(str(smtp_server.maildir)).values()) == mail_count

    status = run_cli("jobs", "status", report["run_id"], "--config", "examples/campaign.yaml", env=env)
    assert status.returncode == 0 and "succeeded" in status.stdout and "braze" in status.stdout
