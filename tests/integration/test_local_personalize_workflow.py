"""The whole Personalize workflow through real boto3 against a running local_personalize (issue 3, "Done when").

dataset group → schemas → datasets → CSV imports from moto S3 → event tracker → PutEvents/PutItems/PutUsers
→ solution version ACTIVE → campaign → recommendations change after new PutEvents (no retrain) → filter
excludes purchased items → batch inference and batch segment jobs through S3 → metrics → restart.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import boto3
import numpy as np
import pytest

from synthetic_shop import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, USERS_SCHEMA, generate
from tests.fixtures.local_personalize import LocalPersonalizeServer, personalize_clients

pytestmark = pytest.mark.integration
ROLE = "arn:aws:iam::000000000000:role/local"
WAIT_SECS = 120.0
METRIC_NAMES = {"coverage", "mean_reciprocal_rank_at_25", "normalized_discounted_cumulative_gain_at_5",
                "normalized_discounted_cumulative_gain_at_10", "normalized_discounted_cumulative_gain_at_25",
                "precision_at_5", "precision_at_10", "precision_at_25"}


def wait_active(describe, key: str) -> dict:
    """Poll a Describe* call until ACTIVE; fail on CREATE FAILED or after WAIT_SECS."""
    deadline = time.monotonic() + WAIT_SECS
    while time.monotonic() < deadline:
        resource = describe()[key]
        if resource["status"] == "ACTIVE":
            return resource
        assert resource["status"] != "CREATE FAILED", resource.get("failureReason")
        time.sleep(0.2)
    raise AssertionError(f"{key} still {resource['status']} after {WAIT_SECS}s")


@pytest.fixture(scope="module")
def shop():
    return generate(num_users=300, num_items=200, num_interactions=5000, num_genres=5, seed=11)


@pytest.fixture(scope="module")
def bucket(aws_endpoint_url, aws_region):
    name = f"lp-workflow-{int(time.time() * 1000)}"
    boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def server(tmp_path_factory, aws_endpoint_url):
    with LocalPersonalizeServer(tmp_path_factory.mktemp("lp-workflow") / "data", aws_endpoint_url) as running:
        yield running


@pytest.fixture(scope="module")
def world(server, shop, bucket, aws_endpoint_url, aws_region):
    """Everything up to ACTIVE campaigns, built once through the public API."""
    control, events, runtime = personalize_clients(server.url)
    s3 = boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region)
    group = control.create_dataset_group(name="shop")["datasetGroupArn"]
    wait_active(lambda: control.describe_dataset_group(datasetGroupArn=group), "datasetGroup")
    datasets = {}
    for kind, schema, content in (("Interactions", INTERACTIONS_SCHEMA, shop.interactions_csv()),
                                  ("Items", ITEMS_SCHEMA, shop.items_csv()), ("Users", USERS_SCHEMA, shop.users_csv())):
        schema_arn = control.create_schema(name=f"shop-{kind.lower()}", schema=json.dumps(schema))["schemaArn"]
        datasets[kind] = control.create_dataset(name=f"shop-{kind.lower()}", schemaArn=schema_arn,
                                                datasetGroupArn=group, datasetType=kind)["datasetArn"]
        wait_active(lambda arn=datasets[kind]: control.describe_dataset(datasetArn=arn), "dataset")
        s3.put_object(Bucket=bucket, Key=f"import/{kind.lower()}.csv", Body=content)
        job = control.create_dataset_import_job(
            jobName=f"import-{kind.lower()}", datasetArn=datasets[kind], roleArn=ROLE,
            dataSource={"dataLocation": f"s3://{bucket}/import/{kind.lower()}.csv"})["datasetImportJobArn"]
        wait_active(lambda arn=job: control.describe_dataset_import_job(datasetImportJobArn=arn), "datasetImportJob")
    tracker = control.create_event_tracker(name="shop-tracker", datasetGroupArn=group)
    wait_active(lambda: control.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"]), "eventTracker")
    # A new item and user through the events API, before training, so the model knows them.
    events.put_items(datasetArn=datasets["Items"], items=[
        {"itemId": "new-item", "properties": json.dumps({"genre": "genre0", "creationTimestamp": 1_707_000_000})}])
    events.put_users(datasetArn=datasets["Users"], users=[
        {"userId": "new-user", "properties": json.dumps({"segment": "genre1"})}])
    events.put_events(trackingId=tracker["trackingId"], userId="new-user", sessionId="s-new", eventList=[
        {"eventType": "click", "itemId": "new-item", "sentAt": 1_708_000_000}])

    def train(name: str, recipe: str) -> str:
        solution = control.create_solution(name=name, datasetGroupArn=group,
                                           recipeArn=f"arn:aws:personalize:::recipe/{recipe}")["solutionArn"]
        wait_active(lambda: control.describe_solution(solutionArn=solution), "solution")
        version = control.create_solution_version(solutionArn=solution)["solutionVersionArn"]
        wait_active(lambda: control.describe_solution_version(solutionVersionArn=version), "solutionVersion")
        return version

    personalization = train("shop-personalization", "aws-user-personalization")
    campaign = control.create_campaign(name="shop-campaign", solutionVersionArn=personalization, campaignConfig={
        "itemExplorationConfig": {"explorationWeight": "0", "explorationItemAgeCutOff": "30"}})["campaignArn"]
    wait_active(lambda: control.describe_campaign(campaignArn=campaign), "campaign")
    return {"control": control, "events": events, "runtime": runtime, "s3": s3, "group": group,
            "datasets": datasets, "tracking_id": tracker["trackingId"], "version": personalization,
            "campaign": campaign, "train": train, "bucket": bucket}


def genre_share(shop, item_ids, genre: int) -> float:
    known = [int(item[1:]) for item in item_ids if item.startswith("i")]
    return sum(shop.item_genre[item] == genre for item in known) / max(1, len(known))


def test_recommendations_follow_the_users_taste(world, shop):
    shares, runtime = [], world["runtime"]
    for user in range(30):
        answer = runtime.get_recommendations(campaignArn=world["campaign"], userId=shop.user_id(user), numResults=10)
        items = [item["itemId"] for item in answer["itemList"]]
        assert len(items) == 10 and len(answer["recommendationId"]) == 40
        scores = [item["score"] for item in answer["itemList"]]
        assert scores == sorted(scores, reverse=True) and all(0 <= score <= 1 for score in scores)
        shares.append(genre_share(shop, items, shop.user_genre[user])
                      + genre_share(shop, items, shop.user_second_genre[user]))
    # Each user's two genres are 2 of 5: popularity alone would put ~40 % of the list there.
    assert np.mean(shares) >= 0.6


def test_new_events_change_recommendations_without_retraining(world, shop):
    runtime, events = world["runtime"], world["events"]
    user = int(np.flatnonzero(np.bincount(shop.users) >= 5)[0])
    user_id = shop.user_id(user)
    before = [i["itemId"] for i in runtime.get_recommendations(campaignArn=world["campaign"], userId=user_id,
                                                               numResults=20)["itemList"]]
    # The user turns to a genre they never liked: ten clicks on its most popular items.
    other = next(g for g in range(shop.num_genres) if g not in (shop.user_genre[user], shop.user_second_genre[user]))
    popular = Counter(int(i) for i in shop.items if shop.item_genre[i] == other)
    clicked = [shop.item_id(item) for item, _ in popular.most_common(10)]
    now = time.time()
    events.put_events(trackingId=world["tracking_id"], userId=user_id, sessionId=f"s-{user}", eventList=[
        {"eventType": "click", "itemId": item, "sentAt": now + n} for n, item in enumerate(clicked)])
    after = [i["itemId"] for i in runtime.get_recommendations(campaignArn=world["campaign"], userId=user_id,
                                                              numResults=20)["itemList"]]
    assert after != before
    assert genre_share(shop, after, other) > genre_share(shop, before, other)
    described = world["control"].describe_solution_version(solutionVersionArn=world["version"])
    assert described["solutionVersion"]["status"] == "ACTIVE"  # still the same version: no retrain


def test_filter_excludes_purchased_items(world, shop):
    runtime, events, control = world["runtime"], world["events"], world["control"]
    no_purchases = control.create_filter(
        name="no-purchases", datasetGroupArn=world["group"],
        filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")')["filterArn"]
    wait_active(lambda: control.describe_filter(filterArn=no_purchases), "filter")
    user_id = shop.user_id(5)
    top = [i["itemId"] for i in runtime.get_recommendations(campaignArn=world["campaign"], userId=user_id,
                                                            numResults=5)["itemList"]]
    events.put_events(trackingId=world["tracking_id"], userId=user_id, sessionId="s-buyer", eventList=[
        {"eventType": "purchase", "itemId": top[0], "sentAt": time.time()}])
    filtered = [i["itemId"] for i in runtime.get_recommendations(
        campaignArn=world["campaign"], userId=user_id, numResults=25, filterArn=no_purchases)["itemList"]]
    bought = {shop.item_id(int(item)) for item in shop.items[(shop.users == 5) & shop.purchased]} | {top[0]}
    assert filtered and not bought & set(filtered)


def test_batch_inference_job_reads_s3_and_writes_documented_output(world, shop):
    control, s3, bucket = world["control"], world["s3"], world["bucket"]
    lines = [json.dumps({"userId": shop.user_id(user)}) for user in range(20)] + ["{not json", '{"itemId": "i1"}']
    s3.put_object(Bucket=bucket, Key="batch/in/users.json", Body="\n".join(lines).encode())
    job = control.create_batch_inference_job(
        jobName="shop-batch", solutionVersionArn=world["version"], numResults=7, roleArn=ROLE,
        jobInput={"s3DataSource": {"path": f"s3://{bucket}/batch/in/users.json"}},
        jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/batch/out/"}})["batchInferenceJobArn"]
    wait_active(lambda: control.describe_batch_inference_job(batchInferenceJobArn=job), "batchInferenceJob")
    body = s3.get_object(Bucket=bucket, Key="batch/out/users.json.out")["Body"].read().decode()
    records = [json.loads(line) for line in body.splitlines()]
    assert len(records) == len(lines)
    for user, record in enumerate(records[:20]):
        assert record["input"] == {"userId": shop.user_id(user)} and record["error"] is None
        assert len(record["output"]["recommendedItems"]) == 7 == len(record["output"]["scores"])
    assert records[20]["input"] == "{not json" and records[20]["error"]
    assert records[21]["input"] == {"itemId": "i1"} and "userId" in records[21]["error"]


def test_batch_segment_job_finds_the_items_fans(world, shop):
    control, s3, bucket = world["control"], world["s3"], world["bucket"]
    version = world["train"]("shop-affinity", "aws-item-affinity")
    counts = Counter(int(i) for i in shop.items)
    queried = [max(shop.items_of_genre(genre), key=lambda item: counts[int(item)]) for genre in range(3)]
    lines = "\n".join(json.dumps({"itemId": shop.item_id(int(item))}) for item in queried)
    s3.put_object(Bucket=bucket, Key="segment/in/items.json", Body=lines.encode())
    job = control.create_batch_segment_job(
        jobName="shop-segment", solutionVersionArn=version, numResults=20, roleArn=ROLE,
        jobInput={"s3DataSource": {"path": f"s3://{bucket}/segment/in/items.json"}},
        jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/segment/out/"}})["batchSegmentJobArn"]
    wait_active(lambda: control.describe_batch_segment_job(batchSegmentJobArn=job), "batchSegmentJob")
    body = s3.get_object(Bucket=bucket, Key="segment/out/items.json.out")["Body"].read().decode()
    records = [json.loads(line) for line in body.splitlines()]
    assert [r["input"] for r in records] == [{"itemId": shop.item_id(int(item))} for item in queried]
    shares = []
    for genre, record in enumerate(records):
        users = [int(user[1:]) for user in record["output"]["recommendedUsers"]]
        assert len(users) == 20 and record["error"] is None
        shares.append(np.mean([genre in (shop.user_genre[u], shop.user_second_genre[u]) for u in users]))
    # Base rate: the share of all users who count the genre among their two; the segment must beat it.
    base = np.mean([np.mean((shop.user_genre == genre) | (shop.user_second_genre == genre)) for genre in range(3)])
    assert np.mean(shares) >= base + 0.05


def test_dataset_export_jobs_write_bulk_put_or_all_data(world, shop):
    control, s3, bucket = world["control"], world["s3"], world["bucket"]
    events = world["events"]
    events.put_events(trackingId=world["tracking_id"], userId="exported-user", sessionId="s-export", eventList=[
        {"eventType": "click", "itemId": "i3", "sentAt": 1_708_000_100}])

    def export(name: str, dataset: str, **mode) -> list[list[str]]:
        job = control.create_dataset_export_job(
            jobName=name, datasetArn=world["datasets"][dataset], roleArn=ROLE, **mode,
            jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/export/"}})["datasetExportJobArn"]
        described = wait_active(lambda: control.describe_dataset_export_job(datasetExportJobArn=job), "datasetExportJob")
        assert described["ingestionMode"] == mode.get("ingestionMode", "PUT")  # PUT is the default
        assert job in {j["datasetExportJobArn"] for j in control.list_dataset_export_jobs(
            datasetArn=world["datasets"][dataset])["datasetExportJobs"]}
        body = s3.get_object(Bucket=bucket, Key=f"export/{name}/{dataset.upper()}.csv")["Body"].read().decode()
        return [line.split(",") for line in body.splitlines()]

    put = export("interactions-put", "Interactions")
    assert put[0] == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"]
    assert ["exported-user", "i3", "1708000100", "click"] in put[1:]
    assert {row[0] for row in put[1:]} <= {"new-user", "exported-user"} | {shop.user_id(u) for u in range(300)}
    bulk = export("interactions-bulk", "Interactions", ingestionMode="BULK")
    assert len(bulk) - 1 == len(shop.users) and ["exported-user", "i3", "1708000100", "click"] not in bulk
    everything = export("interactions-all", "Interactions", ingestionMode="ALL")
    assert len(everything) == len(bulk) + len(put) - 1
    items = export("items-all", "Items", ingestionMode="ALL")
    assert items[0] == ["ITEM_ID", "GENRE", "CREATION_TIMESTAMP"]
    assert ["new-item", "genre0", "1707000000"] in items and len(items) - 1 == shop.num_items + 1


def test_solution_metrics(world):
    metrics = world["control"].get_solution_metrics(solutionVersionArn=world["version"])["metrics"]
    assert METRIC_NAMES <= set(metrics)
    assert all(0.0 <= value <= 1.0 for value in metrics.values())
    assert metrics["normalized_discounted_cumulative_gain_at_10"] > 0


def test_too_little_data_fails_the_version_with_a_reason(world):
    control = world["control"]
    group = control.create_dataset_group(name="tiny")["datasetGroupArn"]
    schema = control.create_schema(name="tiny-interactions", schema=json.dumps(INTERACTIONS_SCHEMA))["schemaArn"]
    control.create_dataset(name="tiny", schemaArn=schema, datasetGroupArn=group, datasetType="Interactions")
    solution = control.create_solution(name="tiny", datasetGroupArn=group,
                                       recipeArn="arn:aws:personalize:::recipe/aws-popularity-count")["solutionArn"]
    version = control.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    deadline = time.monotonic() + WAIT_SECS
    while (described := control.describe_solution_version(solutionVersionArn=version)["solutionVersion"])[
            "status"] not in ("ACTIVE", "CREATE FAILED") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert described["status"] == "CREATE FAILED"
    assert "1000" in described["failureReason"]


def test_state_and_fold_in_survive_a_restart(world, server, shop):
    runtime = world["runtime"]
    user_id = shop.user_id(7)
    world["events"].put_events(trackingId=world["tracking_id"], userId=user_id, sessionId="s-restart", eventList=[
        {"eventType": "click", "itemId": shop.item_id(n), "sentAt": time.time()} for n in range(5)])
    before = runtime.get_recommendations(campaignArn=world["campaign"], userId=user_id, numResults=15)["itemList"]
    server.stop()
    server.start()
    control, _, runtime = personalize_clients(server.url)
    assert control.describe_campaign(campaignArn=world["campaign"])["campaign"]["status"] == "ACTIVE"
    deadline = time.monotonic() + WAIT_SECS
    while True:
        try:
            after = runtime.get_recommendations(campaignArn=world["campaign"], userId=user_id, numResults=15)
            break
        except runtime.exceptions.ResourceInUseException:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert [i["itemId"] for i in after["itemList"]] == [i["itemId"] for i in before]
