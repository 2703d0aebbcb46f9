"""Data deletion jobs through real boto3 against a running local_personalize (issue 9 item 7).

The boto3 sequence is the one AWS documents (create_data_deletion_job with a USER_ID CSV in S3, then
describe until COMPLETED): the deleted users' interactions leave the datasets, the campaign trained before
the job stops serving their history, segments leave them out, and a retrained version never saw them.
"""

from __future__ import annotations

import json
import time

import boto3
import pytest

from tests.fixtures.local_personalize import LocalPersonalizeServer, personalize_clients
from tests.integration.workers_support import ROLE, train_shop, train_version, wait_active

pytestmark = pytest.mark.integration
DELETED = ["u3", "u4"]


def wait_status(describe, key: str, wanted: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resource = describe()[key]
        if resource["status"] == wanted:
            return resource
        assert resource["status"] not in ("FAILED", "CREATE FAILED"), resource.get("failureReason")
        time.sleep(0.2)
    raise AssertionError(f"{key} still {resource['status']} after {timeout}s")


@pytest.fixture(scope="module")
def world(tmp_path_factory, aws_endpoint_url, aws_region):
    s3 = boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region)
    bucket = f"lp-deletion-{int(time.time() * 1000)}"
    s3.create_bucket(Bucket=bucket)
    with LocalPersonalizeServer(tmp_path_factory.mktemp("lp-deletion") / "data", aws_endpoint_url) as server:
        shop = train_shop(server.url, s3, bucket, name="forget", num_users=200, num_items=80)
        affinity = train_version(server.url, shop.dataset_group_arn, "forget-affinity", "aws-item-affinity")
        control, _events, runtime = personalize_clients(server.url)
        campaign = control.create_campaign(name="forget", solutionVersionArn=shop.solution_version_arn, campaignConfig={
            "itemExplorationConfig": {"explorationWeight": "0"}})["campaignArn"]
        wait_active(lambda: control.describe_campaign(campaignArn=campaign), "campaign")
        yield {"control": control, "runtime": runtime, "s3": s3, "bucket": bucket, "shop": shop,
               "campaign": campaign, "affinity": affinity, "url": server.url}


def items_for(world, user_id: str) -> list[str]:
    answer = world["runtime"].get_recommendations(campaignArn=world["campaign"], userId=user_id, numResults=20)
    return [item["itemId"] for item in answer["itemList"]]


def test_deleted_users_leave_datasets_models_and_segments(world):
    control, s3, bucket, shop = world["control"], world["s3"], world["bucket"], world["shop"]
    stranger = items_for(world, "never-seen-user")
    assert items_for(world, "another-new-user") == stranger  # what a user the model never saw gets
    before = {user: items_for(world, user) for user in DELETED}
    assert all(items != stranger for items in before.values())  # personalised while their data exists

    s3.put_object(Bucket=bucket, Key="deletion/users.csv", Body=("USER_ID\n" + "\n".join(DELETED) + "\n").encode())
    job = control.create_data_deletion_job(
        jobName="forget-two", datasetGroupArn=shop.dataset_group_arn, roleArn=ROLE,
        dataSource={"dataLocation": f"s3://{bucket}/deletion/users.csv"})["dataDeletionJobArn"]
    done = wait_status(lambda: control.describe_data_deletion_job(dataDeletionJobArn=job), "dataDeletionJob",
                       "COMPLETED")
    assert done["numDeleted"] > 0 and done["datasetGroupArn"] == shop.dataset_group_arn
    assert done["dataSource"] == {"dataLocation": f"s3://{bucket}/deletion/users.csv"}
    listed = control.list_data_deletion_jobs(datasetGroupArn=shop.dataset_group_arn)["dataDeletionJobs"]
    assert [(j["dataDeletionJobArn"], j["status"]) for j in listed] == [(job, "COMPLETED")]

    # The campaign trained before the job serves them as users it never saw.
    assert all(items_for(world, user) == stranger for user in DELETED)
    assert items_for(world, "u5") != stranger

    # Segments of a version trained before the job leave them out, even when every user is asked for.
    s3.put_object(Bucket=bucket, Key="deletion/segment/items.json",
                  Body="\n".join(json.dumps({"itemId": f"i{item}"}) for item in range(5)).encode())
    segment = control.create_batch_segment_job(
        jobName="forget-segment", solutionVersionArn=world["affinity"], numResults=shop.num_users, roleArn=ROLE,
        jobInput={"s3DataSource": {"path": f"s3://{bucket}/deletion/segment/items.json"}},
        jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/deletion/segment/out/"}})["batchSegmentJobArn"]
    wait_active(lambda: control.describe_batch_segment_job(batchSegmentJobArn=segment), "batchSegmentJob")
    body = s3.get_object(Bucket=bucket, Key="deletion/segment/out/items.json.out")["Body"].read().decode()
    segments = [json.loads(line)["output"]["recommendedUsers"] for line in body.splitlines()]
    assert all(segment_users and not set(DELETED) & set(segment_users) for segment_users in segments)
    assert any("u5" in segment_users for segment_users in segments)


def test_a_deletion_file_without_user_id_fails_with_a_reason(world):
    control, s3, bucket, shop = world["control"], world["s3"], world["bucket"], world["shop"]
    s3.put_object(Bucket=bucket, Key="deletion/bad.csv", Body=b"SECRET_TOKEN=abc\nu1\n")
    job = control.create_data_deletion_job(
        jobName="forget-bad", datasetGroupArn=shop.dataset_group_arn, roleArn=ROLE,
        dataSource={"dataLocation": f"s3://{bucket}/deletion/bad.csv"})["dataDeletionJobArn"]
    failed = wait_status(lambda: control.describe_data_deletion_job(dataDeletionJobArn=job), "dataDeletionJob",
                         "FAILED")
    assert "USER_ID" in failed["failureReason"] and "SECRET" not in failed["failureReason"]
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.create_data_deletion_job(
            jobName="forget-nothing", datasetGroupArn=shop.dataset_group_arn.replace("forget", "missing"),
            roleArn=ROLE, dataSource={"dataLocation": f"s3://{bucket}/deletion/users.csv"})
