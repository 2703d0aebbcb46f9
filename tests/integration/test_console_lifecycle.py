"""The console lists the lifecycle events the stages record, read from a real Redis, served by the hub over HTTP."""

from __future__ import annotations

import httpx
import pytest

from hub.redis_connection import sync_client
from personalize_hub.config import parse_config
from personalize_hub.ingest import build_app
from personalize_hub.runtime import Hub
from tests.fixtures.threaded_http import ThreadedServer
from tests.integration.workers_support import isolated_redis_url
from workers.keys import lifecycle_key
from workers.notifications import notify

pytestmark = pytest.mark.integration
REDIS_DB = 14  # this module's own database of the test run's Redis
TOKEN = "console-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ARN = "arn:aws:personalize:us-east-1:000000000000"


def test_each_stage_end_or_failure_is_listed_newest_first_on_the_jobs_page(redis_url, tmp_path):
    config = parse_config({
        "console": {"token": TOKEN}, "identity": {"store": {"type": "memory"}},
        "workers": {"redis_url": isolated_redis_url(redis_url, REDIS_DB), "work_uri": f"file://{tmp_path}/work"},
        "notifications": {"journal_size": 5}})
    stages = [  # what imports/run.py, workers/training.py, steps.py and exports.py call, in a week's order
        ("import.finished", "import", "hub-import-1", {"rows": 1500, "rejected": 6, "dataset_arn": f"{ARN}:dataset/g/INTERACTIONS"}),
        ("solution_version.trained", "retrain", "r1", {"solution_version_arn": f"{ARN}:solution/s/2"}),
        ("gate.failed", "retrain", "r1", {"reason": "ndcg@10 0.30 is 25 % below the serving 0.40"}),
        ("solution_version.trained", "retrain", "r2", {"solution_version_arn": f"{ARN}:solution/s/3"}),
        ("campaign.updated", "retrain", "r2", {"campaign_arn": f"{ARN}:campaign/c"}),
        ("batch_job.finished", "weekly", "w1", {"state": "succeeded"}),
        ("export.finished", "weekly", "w1", {"state": "succeeded", "sent": 40}),
    ]
    for event, source, run_id, data in stages:
        notify(config.notifications, event, source, run_id, **data)
    with sync_client(config.notifications.redis_url) as client:  # entries no stage wrote: skipped, not a 500
        client.lpush(lifecycle_key(), b"not json", b'"a string"')

    server = ThreadedServer(build_app(Hub(config)), "hub", lifespan="on").start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            listed = client.get("/console/api/lifecycle", headers=AUTH).json()
            page = client.get("/console/jobs", headers=AUTH)
            anonymous = client.get("/console/api/lifecycle")
    finally:
        server.stop()

    assert listed["error"] is None
    # Newest first, the oldest two beyond journal_size dropped, the two foreign entries skipped.
    assert [(e["event"], e["run_id"]) for e in listed["events"]] == [
        ("export.finished", "w1"), ("batch_job.finished", "w1"), ("campaign.updated", "r2"),
        ("solution_version.trained", "r2"), ("gate.failed", "r1")]
    gate = listed["events"][-1]
    assert gate["failed"] and gate["source"] == "retrain" and "25 % below" in gate["details"]["reason"]
    assert listed["events"][0]["details"] == {"state": "succeeded", "sent": 40} and listed["events"][0]["time"]
    assert page.status_code == 200 and 'id="lifecycle"' in page.text
    assert page.text.count('class="lifecycle-event"') == 5 and "campaign.updated" in page.text
    assert anonymous.status_code == 401
