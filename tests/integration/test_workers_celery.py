"""Real Celery workers (subprocesses) on real Redis: a beat-scheduled job end to end, and kill -9 mid-export.

The worker is `celery -A workers.app worker` reading the test's config from $HUB_CONFIG; batch jobs run
in local_personalize over HTTP against moto S3; exports go to the Braze stand-in and aiosmtpd.
"""

from __future__ import annotations

import json
import mailbox
import re
import subprocess
import sys
from collections import Counter

import pytest
import redis

from tests.integration.workers_support import (
    REPO, CeleryWorker, hub_config, isolated_redis_url, job_config, s3_client, start_beat, train_shop, wait_for,
    write_campaign_inputs, write_config)
from workers.keys import index_key, run_key

pytestmark = pytest.mark.integration
REDIS_DB = 11  # the workers' tests own this database of the test run's Redis (broker queue included)


@pytest.fixture(scope="module")
def shop(local_personalize_url, aws_endpoint_url, aws_region):
    s3 = s3_client(aws_endpoint_url, aws_region)
    bucket = "workers-celery-shop"
    s3.create_bucket(Bucket=bucket)
    return train_shop(local_personalize_url, s3, bucket, name="celery-shop", num_users=700)


@pytest.fixture
def jobs_redis(redis_url):
    return isolated_redis_url(redis_url, REDIS_DB)


def run_state(client: redis.Redis, run_id: str) -> str | None:
    state = client.hget(run_key(run_id), "state")
    return state.decode() if state else None


@pytest.mark.slow
def test_beat_schedules_a_job_that_runs_end_to_end_on_a_worker(shop, jobs_redis, braze_standin, aws_endpoint_url,
                                                              aws_region, unique_name, tmp_path):
    s3 = s3_client(aws_endpoint_url, aws_region)
    users_uri, catalog_uri = write_campaign_inputs(s3, shop.bucket, shop, 30, prefix=unique_name("beat"))
    name = unique_name("every-minute").replace("-", "_")
    export = tmp_path / "export.jsonl"
    destinations = [{"type": "braze", "id": "braze", "rest_url": braze_standin.url, "api_key": braze_standin.api_key},
                    {"type": "file", "id": "file", "path": str(export)}]
    config = write_config(tmp_path / "hub.yaml", hub_config(
        redis_url=jobs_redis, aws_endpoint_url=aws_endpoint_url, personalize_url=shop.url, bucket=shop.bucket,
        jobs=[job_config(name, shop, users_uri, catalog_uri, destinations, schedule="* * * * *")]))
    worker = CeleryWorker(config, tmp_path / "worker.log").start()
    beat = start_beat(config, tmp_path)
    client = redis.Redis.from_url(jobs_redis)
    try:
        # Beat fires at the next minute boundary; the run id names that slot.
        run_id = wait_for(lambda: next(iter(client.zrange(index_key(name), 0, 0)), b"").decode(), 75,
                          "beat to start a run").strip()
        assert re.fullmatch(rf"{name}-\d{{8}}T\d{{4}}", run_id)
        state = wait_for(lambda: (s := run_state(client, run_id)) in ("succeeded", "partial", "failed") and s, 60,
                         f"run {run_id} to finish\n{worker.log_tail()}")
    finally:
        beat.terminate()
        beat.wait(10)
        worker.stop()
    assert state == "succeeded", client.hgetall(run_key(run_id))
    assert int(client.hget(run_key(run_id), "dest|braze|sent")) == 30
    assert len(export.read_text().splitlines()) == 30
    assert len(braze_standin.state.profiles) == 30


@pytest.mark.slow
def test_kill_9_mid_export_resumes_and_sends_nothing_twice(shop, jobs_redis, braze_standin, smtp_server,
                                                          aws_endpoint_url, aws_region, unique_name, tmp_path):
    users = 600
    s3 = s3_client(aws_endpoint_url, aws_region)
    users_uri, catalog_uri = write_campaign_inputs(s3, shop.bucket, shop, users, prefix=unique_name("kill"))
    name = unique_name("kill").replace("-", "_")
    destinations = [
        {"type": "braze", "id": "braze", "rest_url": braze_standin.url, "api_key": braze_standin.api_key},
        # 40 mails a second: the export takes ~15 s, long enough to kill it in the middle.
        {"type": "email", "id": "email", "from_address": "shop@shop.example", "subject": f"{name}",
         "transport": {"kind": "smtp", "host": smtp_server.host, "port": smtp_server.port, "security": "none"},
         "batch": {"max_requests_per_sec": 40}},
    ]
    config = write_config(tmp_path / "hub.yaml", hub_config(
        redis_url=jobs_redis, aws_endpoint_url=aws_endpoint_url, personalize_url=shop.url, bucket=shop.bucket,
        jobs=[job_config(name, shop, users_uri, catalog_uri, destinations)]))
    client = redis.Redis.from_url(jobs_redis)
    first = CeleryWorker(config, tmp_path / "worker-1.log", name="first").start()
    second = CeleryWorker(config, tmp_path / "worker-2.log", name="second")
    run_id = f"{name}-manual"
    # `hub jobs run` without --eager: queues the run for the workers and waits for its report.
    cli = subprocess.Popen([sys.executable, "-m", "personalize_hub.cli", "jobs", "run", name, "--config", str(config),
                            "--run-id", run_id, "--json"], cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        sent = lambda: int(client.hget(run_key(run_id), "dest|email|sent") or 0)  # noqa: E731
        wait_for(lambda: sent() >= 100, 90, f"the export to be under way\n{first.log_tail()}", 0.05)
        first.kill()
        killed_at = sent()
        assert killed_at < users, "the export finished before the kill: slow it down"
        second.start()
        out, err = cli.communicate(timeout=120)
    finally:
        cli.kill()
        first.kill()
        second.stop()
    state = run_state(client, run_id)
    report = json.loads(out)
    assert report["state"] == state and cli.returncode == {"succeeded": 0, "partial": 3}[state], err
    counters = {k.decode(): v.decode() for k, v in client.hgetall(run_key(run_id)).items()}
    assert state in ("succeeded", "partial"), counters
    email_sent, email_unknown = int(counters["dest|email|sent"]), int(counters.get("dest|email|unknown", 0))
    # Every user is accounted for exactly once; a send cut off by the kill is `unknown`, never resent.
    assert email_sent + email_unknown == users and email_sent > killed_at
    received = Counter(message["To"] for message in mailbox.Maildir(str(smtp_server.maildir), create=False)
                       if message["Subject"] == name)
    assert max(received.values()) == 1, [to for to, n in received.items() if n > 1]
    assert email_sent <= len(received) <= email_sent + email_unknown
    # Braze attributes are an idempotent overwrite: every user has them once the run resumed.
    assert int(counters["dest|braze|sent"]) == users
    assert {f"u{u}" for u in range(users)} <= set(braze_standin.state.profiles)
