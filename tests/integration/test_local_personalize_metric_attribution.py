"""Metric attribution through real boto3 against a running local_personalize (issue 9 item 5).

The call sequence follows AWS's "Measure Impact of Recommendations" sample (aws-samples/
amazon-personalize-samples, next_steps/evaluation/measuring_impact_of_recommendations): list and delete an
old attribution, create one with SAMPLECOUNT() and SUM(ITEMS.MARGIN), describe it, import, send PutEvents
with `metricAttribution.eventAttributionSource`, read the metrics back from CloudWatch (namespace
AWS/Personalize, Period 900, Stat Sum), then update, list metrics and delete. The sample's domain recommenders
are replaced by plain event tracking (the metrics do not depend on where the items came from). The bulk
import publishes its report to S3 as documented (metric-attribution-results-s3.html).
"""

from __future__ import annotations

import csv
import io
import json
import random
import time
import uuid
from collections import defaultdict

import boto3
import pytest

from synthetic_shop import csv_bytes
from tests.fixtures.local_personalize import LocalPersonalizeServer, personalize_clients
from tests.integration.workers_support import ROLE, wait_active

pytestmark = pytest.mark.integration
NOW = int(time.time())
ITEMS = [f"p{i}" for i in range(40)]
MARGIN = {item: round(1.5 + i * 0.25, 2) for i, item in enumerate(ITEMS)}

interactions_schema = {"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
                       "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                                  {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
                                  {"name": "EVENT_ATTRIBUTION_SOURCE", "type": ["null", "string"]}],
                       "version": "1.0"}
items_schema = {"type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema",
                "fields": [{"name": "ITEM_ID", "type": "string"}, {"name": "PRICE", "type": "float"},
                           {"name": "CATEGORY_L1", "type": ["string"], "categorical": True},
                           {"name": "MARGIN", "type": "double"}], "version": "1.0"}


@pytest.fixture(scope="module")
def clients(tmp_path_factory, aws_endpoint_url, aws_region):
    data = tmp_path_factory.mktemp("lp-attribution") / "data"
    with LocalPersonalizeServer(data, aws_endpoint_url, extra_args=("--attribution-report-secs", "0.5")) as server:
        personalize, personalize_events, runtime = personalize_clients(server.url)
        s3 = boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region)
        cloud_watch = boto3.client("cloudwatch", endpoint_url=aws_endpoint_url, region_name=aws_region)
        yield personalize, personalize_events, s3, cloud_watch, runtime


def test_measure_impact_of_recommendations_flow(clients):
    personalize, personalize_events, s3, cloud_watch, runtime = clients
    rng = random.Random(3)
    bucket_name = f"lp-attribution-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket_name)
    dataset_group_arn = personalize.create_dataset_group(name="measure-impact")["datasetGroupArn"]
    wait_active(lambda: personalize.describe_dataset_group(datasetGroupArn=dataset_group_arn), "datasetGroup")
    interaction_schema_arn = personalize.create_schema(
        name="impact-interactions", schema=json.dumps(interactions_schema))["schemaArn"]
    items_schema_arn = personalize.create_schema(name="impact-items", schema=json.dumps(items_schema))["schemaArn"]
    interactions_dataset_arn = personalize.create_dataset(
        name="impact_interactions", datasetType="INTERACTIONS", datasetGroupArn=dataset_group_arn,
        schemaArn=interaction_schema_arn)["datasetArn"]
    items_dataset_arn = personalize.create_dataset(
        name="impact_items", datasetType="ITEMS", datasetGroupArn=dataset_group_arn,
        schemaArn=items_schema_arn)["datasetArn"]

    # --- the sample's metric attribution cells ---
    metric_attribution_name = "my-first-metric-attribution"
    for metric in personalize.list_metric_attributions(datasetGroupArn=dataset_group_arn)["metricAttributions"]:
        if metric_attribution_name == metric["name"]:
            personalize.delete_metric_attribution(metricAttributionArn=metric["metricAttributionArn"])
    metrics_list = [{"eventType": "View", "expression": "SAMPLECOUNT()", "metricName": "countViews"},
                    {"eventType": "Purchase", "expression": "SUM(ITEMS.MARGIN)", "metricName": "sumMargin"}]
    output_config = {"roleArn": ROLE, "s3DataDestination": {"path": "s3://" + bucket_name + "/metrics/"}}
    response = personalize.create_metric_attribution(
        name=metric_attribution_name, datasetGroupArn=dataset_group_arn, metricsOutputConfig=output_config,
        metrics=metrics_list)
    metric_attribution_arn = response["metricAttributionArn"]
    description = personalize.describe_metric_attribution(metricAttributionArn=metric_attribution_arn)[
        "metricAttribution"]
    assert description["name"] == metric_attribution_name and description["status"] == "ACTIVE"
    assert description["metricsOutputConfig"] == output_config
    assert [m["name"] for m in personalize.list_metric_attributions()["metricAttributions"]] == [
        metric_attribution_name]
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        personalize.create_metric_attribution(name="second", datasetGroupArn=dataset_group_arn,
                                              metricsOutputConfig=output_config, metrics=metrics_list)

    # --- imports: items, then interactions publishing their report to S3 ---
    s3.put_object(Bucket=bucket_name, Key="items.csv", Body=csv_bytes(
        ["ITEM_ID", "PRICE", "CATEGORY_L1", "MARGIN"], [[i, 9.99, "shoes", MARGIN[i]] for i in ITEMS]))
    job = personalize.create_dataset_import_job(
        jobName="impact_items_import", datasetArn=items_dataset_arn, roleArn=ROLE,
        dataSource={"dataLocation": f"s3://{bucket_name}/items.csv"})["datasetImportJobArn"]
    wait_active(lambda: personalize.describe_dataset_import_job(datasetImportJobArn=job), "datasetImportJob")
    rows, expected = [], defaultdict(float)
    for n in range(1200):
        event_type, item = rng.choice(["View", "View", "View", "Purchase"]), rng.choice(ITEMS)
        source = rng.choice(["blue", "orange", ""])
        rows.append([f"u{n % 90}", item, NOW - 86_400 + n * 30, event_type, source])
        key = (("COUNTVIEWS", 1.0) if event_type == "View" else ("SUMMARGIN", MARGIN[item]))
        expected[(key[0], source or "SOURCE_NAME_UNDEFINED")] += key[1]
    s3.put_object(Bucket=bucket_name, Key="interactions.csv", Body=csv_bytes(
        ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_ATTRIBUTION_SOURCE"], rows))
    job = personalize.create_dataset_import_job(
        jobName="impact_interactions_import", datasetArn=interactions_dataset_arn, roleArn=ROLE,
        dataSource={"dataLocation": f"s3://{bucket_name}/interactions.csv"}, importMode="FULL",
        publishAttributionMetricsToS3=True)["datasetImportJobArn"]
    wait_active(lambda: personalize.describe_dataset_import_job(datasetImportJobArn=job), "datasetImportJob")
    reports = s3.list_objects_v2(Bucket=bucket_name, Prefix="metrics/")["Contents"]
    assert len(reports) == 1 and reports[0]["Key"].startswith("metrics/AggregatedAttributionMetrics - FULL - ")
    report = list(csv.DictReader(io.StringIO(
        s3.get_object(Bucket=bucket_name, Key=reports[0]["Key"])["Body"].read().decode())))
    assert set(report[0]) == {"METRIC_NAME", "EVENT_TYPE", "VALUE", "MATH_FUNCTION", "EVENT_ATTRIBUTION_SOURCE",
                              "TIMESTAMP"}
    totals = defaultdict(float)
    for line in report:
        assert int(line["TIMESTAMP"]) % 900 == 0
        assert line["MATH_FUNCTION"] == {"COUNTVIEWS": "samplecount", "SUMMARGIN": "sum"}[line["METRIC_NAME"]]
        totals[(line["METRIC_NAME"], line["EVENT_ATTRIBUTION_SOURCE"])] += float(line["VALUE"])
    assert totals.keys() == expected.keys()
    assert all(totals[key] == pytest.approx(value) for key, value in expected.items())

    # --- the sample's PutEvents cells, attributed to two scenarios ---
    event_tracking_id = personalize.create_event_tracker(
        name="impact-tracker", datasetGroupArn=dataset_group_arn)["trackingId"]
    sent = defaultdict(float)
    for interval_multiplier, scenario in enumerate(["recommended_for_you", "viewed_X_also_viewed"] * 15, start=1):
        item_id = rng.choice(ITEMS)
        event_type = rng.choice(["View", "View", "View", "View", "Purchase"])
        event = {"eventId": str(uuid.uuid4()), "eventType": event_type, "itemId": item_id,
                 "metricAttribution": {"eventAttributionSource": scenario}, "sentAt": NOW - 120 * interval_multiplier}
        personalize_events.put_events(trackingId=event_tracking_id, userId="555", sessionId=str(uuid.uuid4()),
                                      eventList=[event])
        metric, value = ("COUNTVIEWS", 1.0) if event_type == "View" else ("SUMMARGIN", MARGIN[item_id])
        sent[(metric, scenario.upper())] += value

    def cloudwatch_sum(metric_name: str, source: str) -> float:
        answer = cloud_watch.get_metric_data(
            StartTime=NOW - 5 * 3600, EndTime=NOW + 900, MetricDataQueries=[{"Id": "q1", "MetricStat": {
                "Metric": {"Namespace": "AWS/Personalize", "MetricName": metric_name, "Dimensions": [
                    {"Name": "EventAttributionSource", "Value": source},
                    {"Name": "DatasetGroupArn", "Value": dataset_group_arn}]},
                "Period": 900, "Stat": "Sum"}}])
        return sum(answer["MetricDataResults"][0]["Values"])

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(cloudwatch_sum(*key) != pytest.approx(v) for key, v in sent.items()):
        time.sleep(0.5)
    assert {key: cloudwatch_sum(*key) for key in sent} == pytest.approx(dict(sent))
    listed = {(m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])))
              for page in cloud_watch.get_paginator("list_metrics").paginate(Namespace="AWS/Personalize")
              for m in page["Metrics"]}
    assert ("COUNTVIEWS", (("DatasetGroupArn", dataset_group_arn),
                           ("EventAttributionSource", "RECOMMENDED_FOR_YOU"))) in listed

    # --- events that carry the recommendationId of what a campaign showed: attributed to that campaign ---
    solution_arn = personalize.create_solution(name="impact-popular", datasetGroupArn=dataset_group_arn,
                                               recipeArn="arn:aws:personalize:::recipe/aws-popularity-count")
    version = personalize.create_solution_version(solutionArn=solution_arn["solutionArn"])["solutionVersionArn"]
    wait_active(lambda: personalize.describe_solution_version(solutionVersionArn=version), "solutionVersion")
    campaign_arn = personalize.create_campaign(name="impact-popular", solutionVersionArn=version)["campaignArn"]
    wait_active(lambda: personalize.describe_campaign(campaignArn=campaign_arn), "campaign")
    shown = runtime.get_recommendations(campaignArn=campaign_arn, userId="555", numResults=3)
    for n, item in enumerate(shown["itemList"]):
        event = {"eventType": "View", "itemId": item["itemId"], "recommendationId": shown["recommendationId"],
                 "sentAt": NOW - 60 - n}
        if n == 2:  # both given: eventAttributionSource wins
            event["metricAttribution"] = {"eventAttributionSource": "newsletter"}
        personalize_events.put_events(trackingId=event_tracking_id, userId="555", sessionId="s-shown",
                                      eventList=[event])
    wanted = {("COUNTVIEWS", campaign_arn.upper()): 2.0, ("COUNTVIEWS", "NEWSLETTER"): 1.0}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(cloudwatch_sum(*key) != v for key, v in wanted.items()):
        time.sleep(0.5)
    assert {key: cloudwatch_sum(*key) for key in wanted} == wanted

    # --- update, list the metrics, delete ---
    personalize.update_metric_attribution(
        metricAttributionArn=metric_attribution_arn, removeMetrics=["countViews"],
        addMetrics=[{"eventType": "Purchase", "expression": "SAMPLECOUNT()", "metricName": "countPurchases"}])
    names = [m["metricName"] for m in personalize.list_metric_attribution_metrics(
        metricAttributionArn=metric_attribution_arn)["metrics"]]
    assert names == ["sumMargin", "countPurchases"]
    with pytest.raises(personalize.exceptions.InvalidInputException):
        personalize.update_metric_attribution(metricAttributionArn=metric_attribution_arn, addMetrics=[
            {"eventType": "Purchase", "expression": "SUM(ITEMS.CATEGORY_L1)", "metricName": "notNumeric"}])
    personalize.delete_metric_attribution(metricAttributionArn=metric_attribution_arn)
    assert personalize.list_metric_attributions(datasetGroupArn=dataset_group_arn)["metricAttributions"] == []
