"""kill -9 of an eager `hub jobs run` mid-export, then a rerun under a new run id: nothing sent twice, nothing lost.

1,500 recipients go to the real aiosmtpd server scripts/test starts (SMTP cannot say whether a send cut
off by the kill arrived) and to a pickup directory (which can). The killed run stays EXPORTING with no
worker behind it: the rerun must fail it as abandoned after `workers.run_lease_secs`, not wait forever;
recipients in doubt are reconciled (pickup) or reported `unknown` (SMTP) and decided by `hub jobs resolve`.
"""

from __future__ import annotations

import json
import mailbox
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import redis

from tests.integration.workers_support import (
    REPO, hub_config, isolated_redis_url, job_config, s3_client, train_shop, wait_for, write_campaign_inputs,
    write_config)
from workers.keys import ledger_key, run_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REDIS_DB = 9
USERS = 1500
LEASE_SECS = 15.0


@pytest.fixture(scope="module")
def shop(local_personalize_url, aws_endpoint_url, aws_region):
    s3 = s3_client(aws_endpoint_url, aws_region)
    bucket = "workers-kill-rerun-shop"
    s3.create_bucket(Bucket=bucket)
    return train_shop(local_personalize_url, s3, bucket, name="kill-rerun-shop", num_users=USERS)


def hub_jobs(config, *args: str) -> list[str]:
    return [sys.executable, "-m", "personalize_hub.cli", "jobs", *args, "--config", str(config)]


def ledger_states(client: redis.Redis, run_id: str, destination: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(ledger_key(run_id, destination)).items()}


@pytest.mark.parametrize("kill_after_sent", [300, 1100])
def test_kill_9_then_a_new_run_sends_nothing_twice_and_leaves_no_one_unsent(
        kill_after_sent, shop, redis_url, smtp_server, aws_endpoint_url, aws_region, unique_name, tmp_path):
    url = isolated_redis_url(redis_url, REDIS_DB)
    s3 = s3_client(aws_endpoint_url, aws_region)
    users_uri, catalog_uri = write_campaign_inputs(s3, shop.bucket, shop, USERS, prefix=unique_name("rerun"))
    name = unique_name("rerun").replace("-", "_")
    pickup = tmp_path / "pickup"
    destinations = [
        {"type": "email", "id": "smtp", "from_address": "shop@shop.example", "subject": name,
         "transport": {"kind": "smtp", "host": smtp_server.host, "port": smtp_server.port, "security": "none"},
         "batch": {"max_requests_per_sec": 150}},  # ~10 s for 1,500 mails: time to kill it in the middle
        {"type": "email", "id": "pickup", "from_address": "shop@shop.example", "subject": name,
         "transport": {"kind": "pickup", "directory": str(pickup)}, "batch": {"max_requests_per_sec": 150}},
    ]
    config = write_config(tmp_path / "hub.yaml", hub_config(
        redis_url=url, aws_endpoint_url=aws_endpoint_url, personalize_url=shop.url, bucket=shop.bucket,
        jobs=[job_config(name, shop, users_uri, catalog_uri, destinations)], run_lease_secs=LEASE_SECS))
    client = redis.Redis.from_url(url)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first_run, second_run = f"{name}-first", f"{name}-second"

    with open(tmp_path / "first.log", "wb") as log:
        first = subprocess.Popen(hub_jobs(config, "run", name, "--eager", "--run-id", first_run), cwd=REPO,
                                 env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        sent = lambda: int(client.hget(run_key(first_run), "dest|smtp|sent") or 0)  # noqa: E731
        wait_for(lambda: sent() >= kill_after_sent or first.poll() is not None, 240, "the first export to be under way",
                 0.02)
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    killed_at = sent()
    assert 0 < killed_at < USERS, f"not killed mid-export ({killed_at} sent)\n{(tmp_path / 'first.log').read_text()}"
    assert client.hget(run_key(first_run), "state") == b"exporting"

    # A new run id behind the killed one: bounded by the lease, not forever.
    started = time.monotonic()
    second = subprocess.run(hub_jobs(config, "run", name, "--eager", "--run-id", second_run, "--json"), cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=240)
    report = json.loads(second.stdout)
    first_record = {k.decode(): v.decode() for k, v in client.hgetall(run_key(first_run)).items()}
    assert first_record["state"] == "failed" and first_record["error"].startswith("abandoned: no heartbeat")

    smtp_unknown = {k for k, v in ledger_states(client, second_run, "smtp").items() if v == "unknown"}
    print(f"killed after {killed_at} SMTP sends; the new run finished in {time.monotonic() - started:.0f}s "
          f"(lease {LEASE_SECS:.0f}s) with {len(smtp_unknown)} SMTP recipients unknown, "
          f"pickup {report['destinations']['pickup']}")
    received = Counter(m["To"].split("@")[0] for m in mailbox.Maildir(str(smtp_server.maildir), create=False)
                       if m["Subject"] == name)
    everyone = {f"u{u}" for u in range(USERS)}
    # 0 sent twice; 0 never sent: each user received the mail or is reported `unknown` (in flight at the kill).
    assert max(received.values()) == 1, [u for u, n in received.items() if n > 1]
    assert set(received) | smtp_unknown == everyone
    assert len(smtp_unknown) <= 8  # at most the destination's max_in_flight sends were cut off
    assert report["destinations"]["smtp"]["unknown"] == len(smtp_unknown)
    assert second.returncode == (3 if smtp_unknown else 0), second.stderr
    # The pickup directory can say what arrived: nobody in doubt, everyone exactly one mail.
    files = list(pickup.glob("*.eml"))
    assert report["destinations"]["pickup"]["unknown"] == 0 and len(files) == USERS
    assert Counter(mailbox.MaildirMessage(f.read_bytes())["To"] for f in files).most_common(1)[0][1] == 1

    # The operator checked the mail log: they arrived. The run is complete, and a third run sends nothing.
    resolved = subprocess.run(hub_jobs(config, "resolve", second_run, "--as", "sent"), cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)
    assert resolved.returncode == 0 and f"smtp: {len(smtp_unknown)} recipients resolved as sent" in resolved.stdout
    assert client.hget(run_key(second_run), "state") == b"succeeded"
    third = subprocess.run(hub_jobs(config, "run", name, "--eager", "--run-id", f"{name}-third", "--json"), cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=240)
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["destinations"]["smtp"] == {
        "sent": 0, "unchanged": USERS, "unknown": 0, "sending": 0, "failed": {}}
