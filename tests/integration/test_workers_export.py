"""The run steps in-process against real services: malformed batch output, segment audiences, a failed job.

local_personalize runs the batch jobs over HTTP with moto S3; run state, ledger and last-sync hashes are
in the test run's Redis. These drive `workers.steps` and `workers.exports` directly (what the tasks call).
"""

from __future__ import annotations

import json
import time

import pytest

from personalize_hub.config import parse_config
from tests.integration.workers_support import (
    hub_config, isolated_redis_url, job_config, s3_client, train_shop, train_version, write_campaign_inputs)
from workers import context, steps
from workers.app import configure
from workers.driver import run_eagerly
from workers.exports import export_slice

pytestmark = pytest.mark.integration
REDIS_DB = 12


@pytest.fixture(scope="module")
def shop(local_personalize_url, aws_endpoint_url, aws_region):
    s3 = s3_client(aws_endpoint_url, aws_region)
    bucket = "workers-export-shop"
    s3.create_bucket(Bucket=bucket)
    return train_shop(local_personalize_url, s3, bucket, name="export-shop")


@pytest.fixture
def configure_jobs(redis_url, aws_endpoint_url, shop):
    """Point this process's workers at a config holding `jobs` (restored afterwards)."""
    jobs_redis = isolated_redis_url(redis_url, REDIS_DB)

    def apply(jobs, **workers):
        configure(parse_config(hub_config(redis_url=jobs_redis, aws_endpoint_url=aws_endpoint_url,
                                          personalize_url=shop.url, bucket=shop.bucket, jobs=jobs, **workers)))
    yield apply
    context.set_config(None)


def test_a_malformed_output_line_is_reported_not_fatal(shop, configure_jobs, aws_endpoint_url, aws_region,
                                                       unique_name, tmp_path):
    s3 = s3_client(aws_endpoint_url, aws_region)
    users_uri, catalog_uri = write_campaign_inputs(s3, shop.bucket, shop, 25, prefix=unique_name("malformed"))
    export = tmp_path / "export.jsonl"
    name = unique_name("malformed").replace("-", "_")
    configure_jobs([job_config(name, shop, users_uri, catalog_uri, [{"type": "file", "id": "file", "path": str(export)}])])
    run_id = f"{name}-1"
    steps.start(name, run_id)
    steps.prepare(run_id)
    steps.submit(run_id)
    while steps.poll(run_id) is not None:
        pass
    # The job's real output, with a line that is not JSON and one Personalize marked as failed in between.
    run = steps.runs().get(run_id)
    bucket, key = run["output_uri"].removeprefix("s3://").split("/", 1)
    lines = s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
    lines[3:3] = [b'{"input": {"userId": "u3"', json.dumps({"input": {"userId": "ghost"}, "error": "no model"}).encode()]
    body = b"\n".join(lines) + b"\n"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    steps.runs().update(run_id, output_bytes=len(body))

    assert export_slice(run_id, 0, None, lambda offset: pytest.fail("one slice covers 27 lines")).finished
    report = steps.runs().report(run_id)
    assert report.state.value == "succeeded"
    assert report.lines_out == 27 and report.lines_with_errors == {"invalid_json": 1, "personalize_error": 1}
    assert any("no model" in sample for sample in report.error_samples)
    assert report.destinations["file"].sent == 25
    assert sorted(json.loads(line)["userId"] for line in export.read_text().splitlines()) == sorted(
        f"u{u}" for u in range(25))


def test_segment_job_pushes_one_audience_per_item(shop, configure_jobs, aws_endpoint_url, aws_region, unique_name,
                                                  tmp_path):
    version = train_version(shop.url, shop.dataset_group_arn, unique_name("affinity"), "aws-item-affinity")
    s3 = s3_client(aws_endpoint_url, aws_region)
    prefix = unique_name("segment")
    s3.put_object(Bucket=shop.bucket, Key=f"{prefix}/items.jsonl",
                  Body="\n".join(json.dumps({"itemId": f"i{i}"}) for i in range(4)).encode())
    export = tmp_path / "audiences.jsonl"
    name = unique_name("affinity").replace("-", "_")
    configure_jobs([{"name": name, "recipe": "item_affinity", "solution_version_arn": version,
                     "input": f"s3://{shop.bucket}/{prefix}/items.jsonl", "num_results": 15,
                     "destinations": [{"type": "file", "id": "audiences", "path": str(export)}]}])
    assert run_eagerly(name, f"{name}-1", sleep=lambda secs: None).value == "succeeded"
    audiences = [json.loads(line) for line in export.read_text().splitlines()]
    assert sorted(a["itemId"] for a in audiences) == ["i0", "i1", "i2", "i3"]
    assert all(len(a["users"]) == 15 and a["runId"] == f"{name}-1" for a in audiences)
    # The same audiences again: nothing to send.
    assert run_eagerly(name, f"{name}-2", sleep=lambda secs: None).value == "succeeded"
    report = steps.runs().report(f"{name}-2")
    assert report.destinations["audiences"].unchanged == 4 and report.destinations["audiences"].sent == 0


def test_a_failed_batch_job_fails_the_run_with_its_reason(shop, configure_jobs, aws_endpoint_url, aws_region,
                                                          unique_name):
    s3 = s3_client(aws_endpoint_url, aws_region)
    prefix = unique_name("failing")
    s3.put_object(Bucket=shop.bucket, Key=f"{prefix}/items.jsonl", Body=b'{"itemId": "i1"}\n')
    name = unique_name("failing").replace("-", "_")
    # A segment job on a user-personalization version: Personalize refuses it at creation.
    configure_jobs([{"name": name, "recipe": "item_affinity", "solution_version_arn": shop.solution_version_arn,
                     "input": f"s3://{shop.bucket}/{prefix}/items.jsonl",
                     "destinations": [{"type": "file", "id": "f", "path": "/dev/null"}]}])
    state = run_eagerly(name, f"{name}-1", sleep=lambda secs: None)
    run = steps.runs().get(f"{name}-1")
    assert state.value == "failed", run
    assert "InvalidInputException" in run["error"] and "USER_SEGMENTATION" in run["error"], run


def test_a_run_waits_for_an_earlier_run_of_its_job_to_finish_exporting(shop, configure_jobs, aws_endpoint_url,
                                                                       aws_region, unique_name, tmp_path):
    s3 = s3_client(aws_endpoint_url, aws_region)
    users_uri, catalog_uri = write_campaign_inputs(s3, shop.bucket, shop, 5, prefix=unique_name("overlap"))
    name = unique_name("overlap").replace("-", "_")
    configure_jobs([job_config(name, shop, users_uri, catalog_uri,
                               [{"type": "file", "id": "f", "path": str(tmp_path / "out.jsonl")}])])
    steps.start(name, f"{name}-1")
    steps.runs().update(f"{name}-1", state="exporting")  # still pushing last week's recommendations
    later = f"{name}-2"
    steps.start(name, later)
    steps.prepare(later)
    steps.submit(later)
    deadline = time.monotonic() + 60
    while steps.runs().get(later).get("waiting_for") is None:
        assert isinstance(steps.poll(later), steps.Wait) and time.monotonic() < deadline
    assert steps.runs().get(later)["waiting_for"] == f"{name}-1" and steps.poll(later) is not None
    steps.runs().update(f"{name}-1", state="succeeded")
    assert steps.poll(later) is None and steps.runs().get(later)["state"] == "exporting"


def test_an_earlier_run_whose_batch_job_ends_late_waits_for_a_later_run_exporting(
        shop, configure_jobs, aws_endpoint_url, aws_region, unique_name, tmp_path):
    s3 = s3_client(aws_endpoint_url, aws_region)
    users_uri, catalog_uri = write_campaign_inputs(s3, shop.bucket, shop, 5, prefix=unique_name("overtaken"))
    name = unique_name("overtaken").replace("-", "_")
    configure_jobs([job_config(name, shop, users_uri, catalog_uri,
                               [{"type": "file", "id": "f", "path": str(tmp_path / "out.jsonl")}])])
    earlier = f"{name}-1"
    steps.start(name, earlier)
    steps.prepare(earlier)
    steps.submit(earlier)
    steps.start(name, f"{name}-2")
    steps.runs().update(f"{name}-2", state="exporting")  # its batch job ended first
    # Two exports of a job at once: each run keeps its sent and unchanged in the job's last-sync field, which the
    # other overwrites, so a slice of one redone after a crash would find nothing sent (workers/ledger.py).
    deadline = time.monotonic() + 60
    while steps.runs().get(earlier).get("waiting_for") is None:
        assert isinstance(steps.poll(earlier), steps.Wait) and time.monotonic() < deadline
    assert steps.runs().get(earlier)["waiting_for"] == f"{name}-2"
    steps.runs().update(f"{name}-2", state="succeeded")
    assert steps.poll(earlier) is None and steps.runs().get(earlier)["state"] == "exporting"
