"""Shared pieces of the workers' integration tests: a trained local_personalize, job configs, Celery workers.

`trained_shop` builds, once per module, a dataset group from the synthetic shop (CSV imports through
moto S3) and an ACTIVE aws-user-personalization solution version, all over HTTP with real boto3.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
import yaml

from synthetic_shop import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, generate
from tests.fixtures.local_personalize import personalize_clients

ROLE = "arn:aws:iam::000000000000:role/local"
WAIT_SECS = 120.0
REPO = Path(__file__).resolve().parents[2]


def wait_active(describe: Callable[[], dict], key: str) -> dict:
    deadline = time.monotonic() + WAIT_SECS
    while time.monotonic() < deadline:
        resource = describe()[key]
        if resource["status"] == "ACTIVE":
            return resource
        assert resource["status"] != "CREATE FAILED", resource.get("failureReason")
        time.sleep(0.2)
    raise AssertionError(f"{key} not ACTIVE after {WAIT_SECS}s")


@dataclass
class TrainedShop:
    """A local_personalize with an ACTIVE solution version, and the shop it learned from."""

    url: str
    dataset_group_arn: str
    solution_version_arn: str
    num_users: int
    num_items: int
    bucket: str

    def user_id(self, index: int) -> str:
        return f"u{index}"


def train_shop(url: str, s3: Any, bucket: str, *, name: str, num_users: int = 300, num_items: int = 120) -> TrainedShop:
    """Dataset group, two CSV imports from S3, one trained aws-user-personalization version."""
    shop = generate(num_users=num_users, num_items=num_items, num_interactions=num_users * 15,
                         num_genres=5, seed=5)
    control, _, _ = personalize_clients(url)
    group = control.create_dataset_group(name=name)["datasetGroupArn"]
    wait_active(lambda: control.describe_dataset_group(datasetGroupArn=group), "datasetGroup")
    for kind, schema, content in (("Interactions", INTERACTIONS_SCHEMA, shop.interactions_csv()),
                                  ("Items", ITEMS_SCHEMA, shop.items_csv())):
        schema_arn = control.create_schema(name=f"{name}-{kind.lower()}", schema=json.dumps(schema))["schemaArn"]
        dataset = control.create_dataset(name=f"{name}-{kind.lower()}", schemaArn=schema_arn,
                                         datasetGroupArn=group, datasetType=kind)["datasetArn"]
        wait_active(lambda arn=dataset: control.describe_dataset(datasetArn=arn), "dataset")
        s3.put_object(Bucket=bucket, Key=f"import/{kind.lower()}.csv", Body=content)
        job = control.create_dataset_import_job(
            jobName=f"{name}-import-{kind.lower()}", datasetArn=dataset, roleArn=ROLE,
            dataSource={"dataLocation": f"s3://{bucket}/import/{kind.lower()}.csv"})["datasetImportJobArn"]
        wait_active(lambda arn=job: control.describe_dataset_import_job(datasetImportJobArn=arn), "datasetImportJob")
    version = train_version(url, group, f"{name}-personalization", "aws-user-personalization")
    return TrainedShop(url, group, version, num_users, num_items, bucket)


def train_version(url: str, group: str, name: str, recipe: str) -> str:
    """An ACTIVE solution version of `recipe` on the dataset group."""
    control, _, _ = personalize_clients(url)
    solution = control.create_solution(name=name, datasetGroupArn=group,
                                       recipeArn=f"arn:aws:personalize:::recipe/{recipe}")["solutionArn"]
    wait_active(lambda: control.describe_solution(solutionArn=solution), "solution")
    version = control.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    wait_active(lambda: control.describe_solution_version(solutionVersionArn=version), "solutionVersion")
    return version


def write_campaign_inputs(s3: Any, bucket: str, shop: TrainedShop, users: int, *, prefix: str = "campaign"
                          ) -> tuple[str, str]:
    """(users list URI, catalog URI) on S3: users u0… with emails, every item of the shop in the catalog."""
    lines = "\n".join(json.dumps({"userId": shop.user_id(u), "email": f"{shop.user_id(u)}@shop.example",
                                  "firstName": f"User {u}"}) for u in range(users))
    s3.put_object(Bucket=bucket, Key=f"{prefix}/users.jsonl", Body=lines.encode())
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["ITEM_ID", "NAME", "PRICE", "URL", "IMAGE"])
    for item in range(shop.num_items):
        writer.writerow([f"i{item}", f"Product {item}", f"{10 + item % 50}.99", f"https://shop.example/p/i{item}",
                         f"https://img.example/i{item}.jpg"])
    s3.put_object(Bucket=bucket, Key=f"{prefix}/items.csv", Body=out.getvalue().encode())
    return f"s3://{bucket}/{prefix}/users.jsonl", f"s3://{bucket}/{prefix}/items.csv"


def job_config(name: str, shop: TrainedShop, users_uri: str, catalog_uri: str, destinations: list[dict],
               **extra: Any) -> dict[str, Any]:
    return {"name": name, "recipe": "user_recommendations", "solution_version_arn": shop.solution_version_arn,
            "input": users_uri, "num_results": 5, "items_catalog": catalog_uri,
            "item_metadata": ["NAME", "PRICE", "URL", "IMAGE"], "destinations": destinations, **extra}


def hub_config(*, redis_url: str, aws_endpoint_url: str, personalize_url: str, bucket: str, jobs: list[dict],
               **workers: Any) -> dict[str, Any]:
    """A hub config for tests: fast polls and short slices so redelivery happens within seconds."""
    return {
        "aws": {"endpoint_url": aws_endpoint_url, "personalize_endpoint_url": personalize_url},
        "retry": {"base_delay_secs": 0.05, "max_delay_secs": 1.0, "max_elapsed_secs": 20.0},
        "workers": {"redis_url": redis_url, "work_uri": f"s3://{bucket}/work", "role_arn": ROLE,
                    "poll_interval_secs": 0.5, "export_slice_secs": 2.0, "visibility_timeout_secs": 10,
                    "lock_ttl_secs": 3.0, "run_lease_secs": 60.0, **workers},
        "jobs": jobs,
    }


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def isolated_redis_url(redis_url: str, worker_db: int) -> str:
    """The test run's Redis on a database of its own, emptied first (no key of another test leaks in)."""
    url = redis_url.rsplit("/", 1)[0] + f"/{worker_db}" if redis_url.count("/") >= 3 else f"{redis_url}/{worker_db}"
    redis.Redis.from_url(url).flushdb()
    return url


def start_beat(config_path: Path, workdir: Path) -> subprocess.Popen:
    """`celery -A workers.app beat` on the config, logging to workdir/beat.log, its schedule file in workdir."""
    env = {**os.environ, "HUB_CONFIG": str(config_path), "PYTHONPATH": str(REPO)}
    with open(workdir / "beat.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.app", "beat", "--loglevel", "INFO",
                                 "--schedule", str(workdir / "beat-schedule")], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


class CeleryWorker:
    """`celery -A workers.app worker` in its own process group, stopped (or killed) by that group id."""

    def __init__(self, config_path: Path, log_path: Path, *, concurrency: int = 2, name: str = "w1"):
        self.command = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--loglevel", "INFO",
                        "--pool", "prefork", "--concurrency", str(concurrency), "--hostname", f"{name}@%h",
                        "--without-gossip", "--without-mingle", "--without-heartbeat"]
        self.env = {**os.environ, "HUB_CONFIG": str(config_path), "PYTHONPATH": str(REPO)}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> CeleryWorker:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, cwd=REPO, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self) -> None:
        """kill -9 of the worker and its pool children (its own process group)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:]) if self.log_path.exists() else ""


def wait_for(condition: Callable[[], Any], timeout_secs: float, what: str, interval_secs: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_secs)
    pytest.fail(f"timed out after {timeout_secs:.0f}s waiting for {what}")


def s3_client(aws_endpoint_url: str, aws_region: str) -> Any:
    return boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region)
