"""GET /recommendations on the real hub app over HTTP: exported to real Redis, live from local_personalize."""

from __future__ import annotations

import json
import time

import boto3
import httpx
import pytest

from connectors.destinations.recommendation_store import RecommendationStore, RecommendationStoreConfig
from personalize_hub.config import parse_config
from hub.connector import Context, Outcome
from personalize_hub.ingest import build_app
from personalize_hub.runtime import Hub
from synthetic_shop import INTERACTIONS_SCHEMA, generate
from tests.fixtures.exports import CATALOG, deliver, export_event
from tests.fixtures.local_personalize import LocalPersonalizeServer, personalize_clients
from tests.fixtures.threaded_http import ThreadedServer

pytestmark = pytest.mark.integration
ROLE = "arn:aws:iam::000000000000:role/local"
WAIT_SECS = 120.0
API_KEY = "connected-content-key"


def wait_active(describe, key: str) -> None:
    deadline = time.monotonic() + WAIT_SECS
    while time.monotonic() < deadline:
        status = describe()[key]["status"]
        if status == "ACTIVE":
            return
        assert status != "CREATE FAILED", describe()[key].get("failureReason")
        time.sleep(0.2)
    raise AssertionError(f"{key} not ACTIVE after {WAIT_SECS}s")


@pytest.fixture(scope="module")
def popular_campaign(tmp_path_factory, aws_endpoint_url, aws_region):
    """A local_personalize with a Popularity-Count campaign trained on a small synthetic shop."""
    shop = generate(num_users=60, num_items=40, num_interactions=1500, num_genres=4, seed=5)
    bucket = f"recs-endpoint-{int(time.time() * 1000)}"
    s3 = boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="interactions.csv", Body=shop.interactions_csv())
    with LocalPersonalizeServer(tmp_path_factory.mktemp("recs-endpoint") / "data", aws_endpoint_url) as server:
        control, _, runtime = personalize_clients(server.url)
        group = control.create_dataset_group(name="recs")["datasetGroupArn"]
        wait_active(lambda: control.describe_dataset_group(datasetGroupArn=group), "datasetGroup")
        schema = control.create_schema(name="recs-interactions", schema=json.dumps(INTERACTIONS_SCHEMA))["schemaArn"]
        dataset = control.create_dataset(name="recs-interactions", schemaArn=schema, datasetGroupArn=group,
                                         datasetType="Interactions")["datasetArn"]
        wait_active(lambda: control.describe_dataset(datasetArn=dataset), "dataset")
        job = control.create_dataset_import_job(jobName="recs-import", datasetArn=dataset, roleArn=ROLE, dataSource={
            "dataLocation": f"s3://{bucket}/interactions.csv"})["datasetImportJobArn"]
        wait_active(lambda: control.describe_dataset_import_job(datasetImportJobArn=job), "datasetImportJob")
        solution = control.create_solution(name="recs-popular", datasetGroupArn=group,
                                           recipeArn="arn:aws:personalize:::recipe/aws-popularity-count")["solutionArn"]
        wait_active(lambda: control.describe_solution(solutionArn=solution), "solution")
        version = control.create_solution_version(solutionArn=solution)["solutionVersionArn"]
        wait_active(lambda: control.describe_solution_version(solutionVersionArn=version), "solutionVersion")
        campaign = control.create_campaign(name="recs-popular", solutionVersionArn=version)["campaignArn"]
        wait_active(lambda: control.describe_campaign(campaignArn=campaign), "campaign")
        yield {"server": server, "campaign": campaign, "runtime": runtime}


def hub_config(redis_url: str, prefix: str, tmp_path, aws: dict | None = None, **recommendations):
    return parse_config({
        "dead_letter": {"type": "file", "id": "dead_letter", "path": str(tmp_path / "dead.jsonl")},
        "recommendations": {"enabled": True, "redis_url": redis_url, "key_prefix": prefix,
                            "api_keys": [API_KEY], **recommendations},
        "aws": aws or {},
    })


def serve(config) -> ThreadedServer:
    return ThreadedServer(build_app(Hub(config)), "hub", lifespan="on").start()


async def export(redis_url: str, prefix: str, *events) -> None:
    config = RecommendationStoreConfig(type="recommendation_store", redis_url=redis_url, key_prefix=prefix)
    settlements = await deliver(RecommendationStore(config, Context()), list(events))
    assert {s.outcome for s in settlements} == {Outcome.DELIVERED}


async def test_exported_recommendations_are_served_in_both_shapes(redis_url, unique_name, tmp_path):
    prefix = unique_name("recs")
    await export(redis_url, prefix, export_event("ann", ("i3", "i1", "i2")), export_event("bob", ("i2",)))
    server = serve(hub_config(redis_url, prefix, tmp_path))
    try:
        async with httpx.AsyncClient(base_url=server.url, headers={"X-Api-Key": API_KEY}) as http:
            array = await http.get("/recommendations", params={"user_id": "ann", "num_results": 2})
            whole = await http.get("/recommendations", params={"user_id": "bob", "format": "object"})
            unknown = await http.get("/recommendations", params={"user_id": "carol", "format": "object"})
            no_key = await http.get("/recommendations", params={"user_id": "ann"}, headers={"X-Api-Key": ""})
            health = await http.get("/healthz")
    finally:
        server.stop()
    assert array.status_code == 200 and array.headers["content-type"] == "application/json"
    assert array.json() == [{"id": "i3", **CATALOG["i3"]}, {"id": "i1", **CATALOG["i1"]}]
    body = whole.json()
    assert body["source"] == "store" and body["items"] == [{"id": "i2", **CATALOG["i2"]}]
    assert body["run_id"] == "weekly_email-20260105T060000" and body["job"] == "weekly_email"
    assert unknown.status_code == 200 and unknown.json()["items"] == [] and unknown.json()["source"] == "none"
    assert no_key.status_code == 401 and health.status_code == 200


async def test_a_rerun_export_replaces_what_is_served(redis_url, unique_name, tmp_path):
    prefix = unique_name("recs")
    await export(redis_url, prefix, export_event("ann", ("i1", "i2"), run_id="run-1"))
    await export(redis_url, prefix, export_event("ann", ("i3",), run_id="run-2"))
    server = serve(hub_config(redis_url, prefix, tmp_path))
    try:
        async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}) as http:
            body = (await http.get("/recommendations", params={"user_id": "ann", "format": "object"})).json()
    finally:
        server.stop()
    assert body["run_id"] == "run-2" and [i["id"] for i in body["items"]] == ["i3"]


async def test_unknown_users_get_live_popular_items_cached_in_redis(redis_url, unique_name, tmp_path,
                                                                    popular_campaign):
    prefix = unique_name("recs")
    campaign, runtime = popular_campaign["campaign"], popular_campaign["runtime"]
    expected = [i["itemId"] for i in runtime.get_recommendations(campaignArn=campaign, numResults=5)["itemList"]]
    top = expected[0]
    # An export taught the store the top item's metadata: the live answer is decorated with it.
    await export(redis_url, prefix, export_event("ann", (top,), record={
        "userId": "ann", "job": "j", "runId": "r", "items": [{"itemId": top, "name": "Best Seller", "price": 5}]}))
    config = hub_config(redis_url, prefix, tmp_path, popular_campaign_arn=campaign, cache_ttl_secs=600,
                        aws={"personalize_endpoint_url": popular_campaign["server"].url})
    server = serve(config)
    try:
        async with httpx.AsyncClient(base_url=server.url, headers={"X-Api-Key": API_KEY}) as http:
            first = (await http.get("/recommendations", params={"user_id": "zed", "num_results": 5,
                                                                 "format": "object"})).json()
            popular_campaign["server"].stop()  # Personalize is gone: only the cache can answer now
            cached = (await http.get("/recommendations", params={"user_id": "zed", "num_results": 5,
                                                                  "format": "object"})).json()
            uncached = await http.get("/recommendations", params={"user_id": "zed", "num_results": 4})
    finally:
        server.stop()
    assert first["source"] == "popular" and [i["id"] for i in first["items"]] == expected
    assert first["items"][0] == {"id": top, "name": "Best Seller", "price": 5}
    assert cached == first
    assert uncached.status_code == 503 and uncached.json()["error"] == "recommendations_unavailable"


@pytest.fixture(scope="module")
def recommender(tmp_path_factory, aws_endpoint_url, aws_region):
    """A local_personalize ECOMMERCE dataset group with a "recommended for you" recommender that returns metadata."""
    shop = generate(num_users=120, num_items=60, num_interactions=4000, num_genres=4, purchase_share=0.3,
                         seed=7)
    bucket = f"recs-recommender-{int(time.time() * 1000)}"
    s3 = boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region)
    s3.create_bucket(Bucket=bucket)
    lines = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE"] + [
        f"u{u},i{i},{t},{'Purchase' if bought else 'View'}" for u, i, t, bought in
        zip(shop.users.tolist(), shop.items.tolist(), shop.timestamps.tolist(), shop.purchased.tolist())]
    s3.put_object(Bucket=bucket, Key="interactions.csv", Body="\n".join(lines).encode())
    items = ["ITEM_ID,PRICE,CATEGORY_L1"] + [f"i{i},{5 + i}.5,genre{g}" for i, g in enumerate(shop.item_genre.tolist())]
    s3.put_object(Bucket=bucket, Key="items.csv", Body="\n".join(items).encode())
    schemas = {
        "Interactions": {"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
                         "version": "1.0", "fields": [
                             {"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                             {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"}]},
        "Items": {"type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
                  "fields": [{"name": "ITEM_ID", "type": "string"}, {"name": "PRICE", "type": "float"},
                             {"name": "CATEGORY_L1", "type": "string", "categorical": True}]}}
    with LocalPersonalizeServer(tmp_path_factory.mktemp("recs-recommender") / "data", aws_endpoint_url) as server:
        control, _, runtime = personalize_clients(server.url)
        group = control.create_dataset_group(name="recs-shop", domain="ECOMMERCE")["datasetGroupArn"]
        wait_active(lambda: control.describe_dataset_group(datasetGroupArn=group), "datasetGroup")
        for kind, schema in schemas.items():
            schema_arn = control.create_schema(name=f"recs-shop-{kind}", domain="ECOMMERCE",
                                               schema=json.dumps(schema))["schemaArn"]
            dataset = control.create_dataset(name=f"recs-shop-{kind}", schemaArn=schema_arn, datasetGroupArn=group,
                                             datasetType=kind)["datasetArn"]
            wait_active(lambda: control.describe_dataset(datasetArn=dataset), "dataset")
            job = control.create_dataset_import_job(jobName=f"recs-shop-{kind}", datasetArn=dataset, roleArn=ROLE,
                                                    dataSource={"dataLocation": f"s3://{bucket}/{kind.lower()}.csv"})
            wait_active(lambda: control.describe_dataset_import_job(
                datasetImportJobArn=job["datasetImportJobArn"]), "datasetImportJob")
        arn = control.create_recommender(
            name="recs-for-you", datasetGroupArn=group, recipeArn="arn:aws:personalize:::recipe/aws-ecomm-recommended-for-you",
            recommenderConfig={"enableMetadataWithRecommendations": True})["recommenderArn"]
        wait_active(lambda: control.describe_recommender(recommenderArn=arn), "recommender")
        no_genre0 = control.create_filter(name="recs-no-genre0", datasetGroupArn=group, filterExpression=(
            'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("genre0")'))["filterArn"]
        wait_active(lambda: control.describe_filter(filterArn=no_genre0), "filter")
        yield {"server": server, "recommender": arn, "filter": no_genre0, "runtime": runtime}


async def test_a_recommender_arn_answers_live_with_filters_and_its_metadata(redis_url, unique_name, tmp_path,
                                                                           recommender):
    prefix, arn, runtime = unique_name("recs"), recommender["recommender"], recommender["runtime"]
    direct = runtime.get_recommendations(recommenderArn=arn, userId="u3", numResults=5,
                                         filterArn=recommender["filter"],
                                         metadataColumns={"ITEMS": ["PRICE", "CATEGORY_L1"]})["itemList"]
    config = hub_config(redis_url, prefix, tmp_path, campaign_arn=arn, metadata_columns=["PRICE", "CATEGORY_L1"],
                        max_num_results=50, filters={"no-genre0": recommender["filter"]},
                        aws={"personalize_endpoint_url": recommender["server"].url})
    server = serve(config)
    try:
        async with httpx.AsyncClient(base_url=server.url, headers={"X-Api-Key": API_KEY}) as http:
            answer = (await http.get("/recommendations", params={"user_id": "u3", "num_results": 5,
                                                                  "filter": "no-genre0", "format": "object"})).json()
            unfiltered = (await http.get("/recommendations", params={"user_id": "u3", "num_results": 20})).json()
    finally:
        server.stop()
    assert answer["source"] == "live" and len(direct) == 5
    assert answer["items"] == [{"id": i["itemId"], **({"score": i["score"]} if "score" in i else {}),
                                **i["metadata"]} for i in direct]
    assert all(item["CATEGORY_L1"] != "genre0" and float(item["PRICE"]) > 5 for item in answer["items"])
    assert any(item["CATEGORY_L1"] == "genre0" for item in unfiltered)  # the filter, not the data, left them out

