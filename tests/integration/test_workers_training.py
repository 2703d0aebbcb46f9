"""Retraining jobs and batch jobs that follow them, on a real Celery worker and beat, Redis, moto S3 and
local_personalize over HTTP through boto3.

A FULL retrain started by beat and an UPDATE retrain queued by `hub jobs run` each move the campaign; a
batch job with `version: latest_active` runs on the newest version after a retrain; and a version trained
on noise (imported with `hub import`) is kept away from the campaign by the gate.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
import redis

from tests.fixtures.local_personalize import personalize_clients
from tests.fixtures.threaded_http import ThreadedServer
from tests.fixtures.webhook_receiver import Receiver
from tests.integration.workers_support import (
    REPO, CeleryWorker, hub_config, isolated_redis_url, job_config, s3_client, start_beat, train_shop, wait_active,
    wait_for, write_campaign_inputs, write_config)
from workers.keys import index_key, run_key

pytestmark = pytest.mark.integration
REDIS_DB = 12  # this module's own database of the test run's Redis
METRIC = "normalized_discounted_cumulative_gain_at_10"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks spec's example secret


def deployed_shop(url, aws_endpoint_url, aws_region, name):
    """A trained shop with a campaign serving its version."""
    s3 = s3_client(aws_endpoint_url, aws_region)
    s3.create_bucket(Bucket=name)
    shop = train_shop(url, s3, name, name=name)
    control, _, _ = personalize_clients(url)
    campaign = control.create_campaign(name=f"{name}-campaign", solutionVersionArn=shop.solution_version_arn,
                                       minProvisionedTPS=1)["campaignArn"]
    wait_active(lambda: control.describe_campaign(campaignArn=campaign), "campaign")
    return shop, campaign, shop.solution_version_arn.rsplit("/", 1)[0]


@pytest.fixture(scope="module")
def deployed(local_personalize_url, aws_endpoint_url, aws_region):
    return deployed_shop(local_personalize_url, aws_endpoint_url, aws_region, "training-shop")


@pytest.fixture
def jobs_redis(redis_url):
    return isolated_redis_url(redis_url, REDIS_DB)


def fields(client: redis.Redis, run_id: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(run_key(run_id)).items()}


def final(client: redis.Redis, run_id: str) -> dict[str, str] | None:
    record = fields(client, run_id)
    return record if record.get("state") in ("succeeded", "partial", "failed") else None


def serving(url: str, campaign: str) -> str:
    control, _, _ = personalize_clients(url)
    doc = control.describe_campaign(campaignArn=campaign)["campaign"]
    pending = doc.get("latestCampaignUpdate", {}).get("status")
    return "" if pending not in (None, "ACTIVE") else doc["solutionVersionArn"]


def hub_cli(*args: str, config, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "personalize_hub.cli", *args, "--config", str(config)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "250"})


@pytest.mark.slow
def test_beat_retrains_full_then_an_update_run_moves_the_campaign_again(deployed, jobs_redis, aws_endpoint_url,
                                                                        unique_name, tmp_path):
    shop, campaign, solution = deployed
    full, update = unique_name("full").replace("-", "_"), unique_name("update").replace("-", "_")
    gate = {"metric": METRIC, "max_drop": 1.0}  # any version passes: this test is about the two modes
    config = write_config(tmp_path / "hub.yaml", hub_config(
        redis_url=jobs_redis, aws_endpoint_url=aws_endpoint_url, personalize_url=shop.url, bucket=shop.bucket, jobs=[
            {"name": full, "recipe": "train", "solution_arn": solution, "training_mode": "FULL",
             "schedule": "* * * * *", "campaign_arn": campaign, "gate": gate},
            {"name": update, "recipe": "train", "solution_arn": solution, "training_mode": "UPDATE",
             "campaign_arn": campaign, "gate": gate}]))
    worker = CeleryWorker(config, tmp_path / "worker.log").start()
    beat = start_beat(config, tmp_path)
    client = redis.Redis.from_url(jobs_redis)
    try:
        run_id = wait_for(lambda: next(iter(client.zrange(index_key(full), 0, 0)), b"").decode(), 75,
                          "beat to start a training run")
        record = wait_for(lambda: final(client, run_id), 120, f"run {run_id}\n{worker.log_tail()}")
        beat.terminate()
        assert record["state"] == "succeeded", record.get("error")
        assert record["decision"] == "campaign_updated" and record["training_mode"] == "FULL"
        assert record["serving_version_arn"] == shop.solution_version_arn
        assert METRIC in json.loads(record["metrics"]) and "gate passed" in record["reason"]
        wait_for(lambda: serving(shop.url, campaign) == record["solution_version_arn"], 60, "the campaign update")

        queued = hub_cli("jobs", "run", update, "--json", config=config)
        report = json.loads(queued.stdout)
        assert queued.returncode == 0, queued.stderr
        assert report["decision"] == "campaign_updated" and report["training_mode"] == "UPDATE"
        assert report["serving_version_arn"] == record["solution_version_arn"]
        control, _, _ = personalize_clients(shop.url)
        version = control.describe_solution_version(solutionVersionArn=report["solution_version_arn"])
        assert version["solutionVersion"]["trainingMode"] == "UPDATE"
        wait_for(lambda: serving(shop.url, campaign) == report["solution_version_arn"], 60, "the second update")
        status = hub_cli("jobs", "status", report["run_id"], config=config)
        assert "new" in status.stdout and "serving" in status.stdout and METRIC in status.stdout
    finally:
        beat.terminate()
        beat.wait(10)
        worker.stop()


def test_a_batch_job_on_latest_active_runs_the_version_of_the_latest_retrain(deployed, jobs_redis, aws_endpoint_url,
                                                                           aws_region, unique_name, tmp_path):
    shop, _, solution = deployed
    s3 = s3_client(aws_endpoint_url, aws_region)
    users_uri, catalog_uri = write_campaign_inputs(s3, shop.bucket, shop, 20, prefix=unique_name("latest"))
    retrain, batch = unique_name("retrain").replace("-", "_"), unique_name("latest").replace("-", "_")
    follows = job_config(batch, shop, users_uri, catalog_uri,
                         [{"type": "file", "id": "file", "path": str(tmp_path / "out.jsonl")}],
                         solution_arn=solution, version="latest_active")
    del follows["solution_version_arn"]
    config = write_config(tmp_path / "hub.yaml", hub_config(
        redis_url=jobs_redis, aws_endpoint_url=aws_endpoint_url, personalize_url=shop.url, bucket=shop.bucket,
        jobs=[{"name": retrain, "recipe": "train", "solution_arn": solution}, follows]))

    trained = hub_cli("jobs", "run", retrain, "--eager", "--json", config=config)
    ran = hub_cli("jobs", "run", batch, "--eager", "--json", config=config)

    assert trained.returncode == 0, trained.stderr
    new_version = json.loads(trained.stdout)["solution_version_arn"]
    assert json.loads(trained.stdout)["decision"] == "trained"
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["solution_version_arn"] == new_version != shop.solution_version_arn
    assert report["solution_version_source"] == f"latest ACTIVE version of {solution}"
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 20


@pytest.fixture
def receiver():
    """A Standard Webhooks receiver (verified with the spec's reference library) on 127.0.0.1."""
    receiving = Receiver(SECRET)
    server = ThreadedServer(receiving.app, "lifecycle-receiver").start()
    receiving.url = f"{server.url}/hook"
    yield receiving
    server.stop()


def test_the_gate_keeps_a_version_trained_on_noise_away_from_the_campaign(local_personalize_url, aws_endpoint_url,
                                                                         aws_region, jobs_redis, receiver, tmp_path):
    shop, campaign, solution = deployed_shop(local_personalize_url, aws_endpoint_url, aws_region, "gate-shop")
    control, _, _ = personalize_clients(shop.url)
    dataset = next(d["datasetArn"] for d in control.list_datasets(datasetGroupArn=shop.dataset_group_arn)["datasets"]
                   if d["datasetArn"].endswith("/INTERACTIONS"))
    rng = random.Random(1)  # interactions with no structure at all: a model of them ranks no better than chance
    noise = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE"] + [
        f"u{rng.randrange(shop.num_users)},i{rng.randrange(shop.num_items)},{1_700_000_000 + n},click"
        for n in range(shop.num_users * 15)]
    (tmp_path / "noise.csv").write_text("\n".join(noise) + "\n")
    job = "gate_noise"
    settings = hub_config(
        redis_url=jobs_redis, aws_endpoint_url=aws_endpoint_url, personalize_url=shop.url, bucket=shop.bucket,
        jobs=[{"name": job, "recipe": "train", "solution_arn": solution, "campaign_arn": campaign,
               "gate": {"metric": METRIC, "max_drop": 0.05}}])
    webhook = {"type": "webhook", "id": "lifecycle", "url": receiver.url, "secret": SECRET,
               "allow_private_networks": True}
    config = write_config(tmp_path / "hub.yaml", {**settings, "imports": {"folder": str(tmp_path / "imports")},
                                                  "notifications": {"webhooks": [webhook]}})

    imported = hub_cli("import", "--dataset-arn", dataset, "--source", str(tmp_path / "noise.csv"), config=config)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    gated = hub_cli("jobs", "run", job, "--eager", "--json", config=config)

    report = json.loads(gated.stdout)
    assert gated.returncode == 3, gated.stderr
    assert report["state"] == "partial" and report["decision"] == "gate_failed"
    new, old = json.loads(report["metrics"])[METRIC], json.loads(report["serving_metrics"])[METRIC]
    assert new < old * 0.95
    assert f"{METRIC} {new:.4f} < {old * 0.95:.4f}" in report["reason"] and "still serves" in report["reason"]
    assert serving(shop.url, campaign) == shop.solution_version_arn
    # Each stage reached the signed webhook, verified by the reference library, once per webhook-id.
    events = {payload["type"]: payload["data"] for payload in receiver.delivered.values()}
    assert set(events) == {"import.finished", "solution_version.trained", "gate.failed"}
    assert events["import.finished"]["rows"] == shop.num_users * 15 and events["import.finished"]["import_job_arn"]
    assert events["solution_version.trained"]["solution_version_arn"] == report["solution_version_arn"]
    assert events["gate.failed"]["reason"] == report["reason"].split("; campaign")[0].removeprefix("gate failed: ")
    assert f"{report['run_id']}:gate.failed" in receiver.delivered
