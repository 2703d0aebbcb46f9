"""AWS's getting-started notebooks for domain dataset groups, as boto3 call sequences, against local_personalize.

The ECOMMERCE and VIDEO_ON_DEMAND flows follow aws-samples/amazon-personalize-samples
getting_started/notebooks_managed_domains/Building_Your_First_Recommender_{Ecommerce,Video_On_Demand}.ipynb:
the same calls with the same arguments, except endpoint_url, the role ARN and the S3 location; the data
is a synthetic shop generated here (the notebooks download the Retail Demo Store data and MovieLens).
Then what the notebooks do not show: recommender lifecycle, filters, promotions, metadata, failures.
"""

from __future__ import annotations

import io
import json
import time

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

from synthetic_shop import generate
from tests.fixtures.local_personalize import LocalPersonalizeServer, personalize_clients

pytestmark = pytest.mark.integration
ROLE = "arn:aws:iam::000000000000:role/PersonalizeRoleDemoRecommender"
WAIT_SECS = 180.0


def wait_status(describe, key: str, wanted: str = "ACTIVE") -> dict:
    deadline = time.monotonic() + WAIT_SECS
    while time.monotonic() < deadline:
        resource = describe()[key]
        if resource["status"] == wanted:
            return resource
        assert resource["status"] != "CREATE FAILED", resource.get("failureReason")
        time.sleep(0.2)
    raise AssertionError(f"{key} still {resource['status']} after {WAIT_SECS}s")


@pytest.fixture(scope="module")
def shop():
    return generate(num_users=300, num_items=150, num_interactions=6000, num_genres=5, purchase_share=0.3,
                         seed=5)


def interactions_csv(shop, click: str, purchase: str) -> bytes:
    out = io.StringIO()
    out.write("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n")
    for user, item, ts, bought in zip(shop.users.tolist(), shop.items.tolist(), shop.timestamps.tolist(),
                                      shop.purchased.tolist()):
        out.write(f"u{user},i{item},{ts},{purchase if bought else click}\n")
    return out.getvalue().encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory, aws_endpoint_url):
    with LocalPersonalizeServer(tmp_path_factory.mktemp("lp-domains") / "data", aws_endpoint_url) as running:
        yield running


@pytest.fixture(scope="module")
def clients(server):
    control, _events, runtime = personalize_clients(server.url)
    return control, runtime


@pytest.fixture(scope="module")
def bucket_name(aws_endpoint_url, aws_region):
    name = f"lp-domains-{int(time.time() * 1000)}"
    boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region).create_bucket(Bucket=name)
    return name


def upload(aws_endpoint_url, aws_region, bucket_name: str, key: str, body: bytes) -> None:
    boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region).put_object(
        Bucket=bucket_name, Key=key, Body=body)


@pytest.fixture(scope="module")
def ecommerce(clients, shop, bucket_name, aws_endpoint_url, aws_region):
    """Building_Your_First_Recommender_Ecommerce.ipynb, call for call."""
    personalize, personalize_runtime = clients
    interactions_file_path = "cleaned_training_data.csv"
    upload(aws_endpoint_url, aws_region, bucket_name, interactions_file_path,
           interactions_csv(shop, "View", "Purchase"))
    role_arn = ROLE

    response = personalize.create_dataset_group(name='personalize_ecomemerce_ds_group', domain='ECOMMERCE')
    dataset_group_arn = response['datasetGroupArn']
    wait_status(lambda: personalize.describe_dataset_group(datasetGroupArn=dataset_group_arn), "datasetGroup")
    interactions_schema = {
        "type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
        "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                   {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"}],
        "version": "1.0"}
    create_schema_response = personalize.create_schema(
        name="personalize-ecommerce-interatn_group", domain="ECOMMERCE", schema=json.dumps(interactions_schema))
    interaction_schema_arn = create_schema_response['schemaArn']
    create_dataset_response = personalize.create_dataset(
        name="personalize_ecommerce_demo_interactions", datasetType="INTERACTIONS",
        datasetGroupArn=dataset_group_arn, schemaArn=interaction_schema_arn)
    interactions_dataset_arn = create_dataset_response['datasetArn']
    wait_status(lambda: personalize.describe_dataset(datasetArn=interactions_dataset_arn), "dataset")
    job = personalize.create_dataset_import_job(
        jobName="personalize_ecommerce_demo_interactions_import", datasetArn=interactions_dataset_arn,
        dataSource={"dataLocation": "s3://{}/{}".format(bucket_name, interactions_file_path)}, roleArn=role_arn)
    wait_status(lambda: personalize.describe_dataset_import_job(datasetImportJobArn=job['datasetImportJobArn']),
                "datasetImportJob")

    available_recipes = personalize.list_recipes(domain='ECOMMERCE')
    viewed_x_also_viewed_arn = personalize.create_recommender(
        name='viewed_x_also_viewed_demo',
        recipeArn='arn:aws:personalize:::recipe/aws-ecomm-customers-who-viewed-x-also-viewed',
        datasetGroupArn=dataset_group_arn)["recommenderArn"]
    recommended_for_you_arn = personalize.create_recommender(
        name='recommended_for_you_demo', recipeArn='arn:aws:personalize:::recipe/aws-ecomm-recommended-for-you',
        datasetGroupArn=dataset_group_arn)["recommenderArn"]
    for arn in (viewed_x_also_viewed_arn, recommended_for_you_arn):
        wait_status(lambda arn=arn: personalize.describe_recommender(recommenderArn=arn), "recommender")
    return {"group": dataset_group_arn, "recipes": available_recipes["recipes"],
            "viewed": viewed_x_also_viewed_arn, "for_you": recommended_for_you_arn}


def test_ecommerce_notebook_runs_to_recommendations(ecommerce, clients, shop):
    personalize, personalize_runtime = clients
    assert {r["recipeArn"].rsplit("/", 1)[1] for r in ecommerce["recipes"]} == {
        "aws-ecomm-customers-who-viewed-x-also-viewed", "aws-ecomm-frequently-bought-together",
        "aws-ecomm-popular-items-by-purchases", "aws-ecomm-popular-items-by-views", "aws-ecomm-recommended-for-you"}
    assert all(r["domain"] == "ECOMMERCE" for r in ecommerce["recipes"])
    user = int(np.argmax(np.bincount(shop.users)))
    test_user_id, test_item_id = f"u{user}", f"i{int(np.bincount(shop.items).argmax())}"
    get_recommendations_response = personalize_runtime.get_recommendations(
        recommenderArn=ecommerce["viewed"], itemId=test_item_id, userId=test_user_id, numResults=10)
    related = [item['itemId'] for item in get_recommendations_response['itemList']]
    assert len(related) == 10 and test_item_id not in related
    # The seed item's genre dominates what its viewers also viewed.
    genre = shop.item_genre[int(test_item_id[1:])]
    assert np.mean([shop.item_genre[int(i[1:])] == genre for i in related]) >= 0.6
    get_recommendations_response = personalize_runtime.get_recommendations(
        recommenderArn=ecommerce["for_you"], userId=test_user_id, numResults=20)
    picks = [item['itemId'] for item in get_recommendations_response['itemList']]
    assert len(picks) == 20
    # "automatically filters items the user purchased based on the userId and Purchase events"
    bought = {f"i{i}" for i in shop.items[(shop.users == user) & shop.purchased].tolist()}
    assert bought and not bought & set(picks)
    mine = {shop.user_genre[user], shop.user_second_genre[user]}
    assert np.mean([shop.item_genre[int(i[1:])] in mine for i in picks]) >= 0.6


def test_recommender_lifecycle_filters_promotions_and_metadata(ecommerce, clients, shop):
    personalize, runtime = clients
    group = ecommerce["group"]
    best_sellers = personalize.create_recommender(
        name="best-sellers", datasetGroupArn=group,
        recipeArn="arn:aws:personalize:::recipe/aws-ecomm-popular-items-by-purchases",
        recommenderConfig={"minRecommendationRequestsPerSecond": 2,
                           "trainingDataConfig": {"excludedDatasetColumns": {"ITEMS": []}}})["recommenderArn"]
    described = personalize.describe_recommender(recommenderArn=best_sellers)["recommender"]
    assert described["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS")
    described = wait_status(lambda: personalize.describe_recommender(recommenderArn=best_sellers), "recommender")
    assert described["recommenderConfig"]["minRecommendationRequestsPerSecond"] == 2
    assert described["recipeArn"].endswith("aws-ecomm-popular-items-by-purchases")
    listed = personalize.list_recommenders(datasetGroupArn=group)["recommenders"]
    assert best_sellers in {r["recommenderArn"] for r in listed}

    buyers = np.bincount(np.unique(shop.users[shop.purchased].astype(np.int64) * shop.num_items
                                   + shop.items[shop.purchased]) % shop.num_items, minlength=shop.num_items)
    top = [item["itemId"] for item in runtime.get_recommendations(
        recommenderArn=best_sellers, userId="u1", numResults=5)["itemList"]]
    assert [buyers[int(i[1:])] for i in top] == sorted(buyers.tolist(), reverse=True)[:5]  # distinct buyers
    with pytest.raises(ClientError, match="userId is required"):
        runtime.get_recommendations(recommenderArn=best_sellers)

    # Filters attach to recommenders as to campaigns: a buyer of the best seller no longer gets it.
    buyer = f"u{int(shop.users[shop.purchased & (shop.items == int(top[0][1:]))][0])}"
    exclude = personalize.create_filter(name="not-bought", datasetGroupArn=group,
                                        filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("Purchase")')
    wait_status(lambda: personalize.describe_filter(filterArn=exclude["filterArn"]), "filter")
    filtered = [item["itemId"] for item in runtime.get_recommendations(
        recommenderArn=best_sellers, userId=buyer, numResults=5, filterArn=exclude["filterArn"])["itemList"]]
    assert len(filtered) == 5 and top[0] not in filtered
    # Promotions: a share of the list from the promotion's filter (here: what the buyer bought), named.
    promoted = personalize.create_filter(name="bought-again", datasetGroupArn=group,
                                         filterExpression='INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("Purchase")')
    wait_status(lambda: personalize.describe_filter(filterArn=promoted["filterArn"]), "filter")
    answer = runtime.get_recommendations(recommenderArn=best_sellers, userId=buyer, numResults=5, promotions=[
        {"name": "again", "percentPromotedItems": 20, "filterArn": promoted["filterArn"]}])["itemList"]
    again = [item["itemId"] for item in answer if item.get("promotionName") == "again"]
    bought = {f"i{i}" for i in shop.items[shop.purchased & (shop.users == int(buyer[1:]))].tolist()}
    assert len(answer) == 5 and len(again) == 1 and set(again) <= bought

    personalize.stop_recommender(recommenderArn=best_sellers)
    assert personalize.describe_recommender(recommenderArn=best_sellers)["recommender"]["status"] == "INACTIVE"
    with pytest.raises(ClientError, match="not ACTIVE"):
        runtime.get_recommendations(recommenderArn=best_sellers, userId="u1")
    personalize.start_recommender(recommenderArn=best_sellers)
    wait_status(lambda: personalize.describe_recommender(recommenderArn=best_sellers), "recommender")
    assert runtime.get_recommendations(recommenderArn=best_sellers, userId="u1", numResults=5)["itemList"]

    personalize.update_recommender(recommenderArn=best_sellers, recommenderConfig={
        "minRecommendationRequestsPerSecond": 3, "enableMetadataWithRecommendations": True})
    updated = personalize.describe_recommender(recommenderArn=best_sellers)["recommender"]
    assert updated["recommenderConfig"]["minRecommendationRequestsPerSecond"] == 3
    assert updated["latestRecommenderUpdate"]["status"] == "ACTIVE"
    personalize.delete_recommender(recommenderArn=best_sellers)
    with pytest.raises(ClientError, match="ResourceNotFound"):
        personalize.describe_recommender(recommenderArn=best_sellers)


def test_use_case_needs_its_event_type_and_a_domain_group(ecommerce, clients):
    personalize, _runtime = clients
    with pytest.raises(ClientError, match="not a use case of the ECOMMERCE domain"):
        personalize.create_recommender(name="wrong", datasetGroupArn=ecommerce["group"],
                                       recipeArn="arn:aws:personalize:::recipe/aws-vod-top-picks")
    custom = personalize.create_dataset_group(name="custom-group")["datasetGroupArn"]
    wait_status(lambda: personalize.describe_dataset_group(datasetGroupArn=custom), "datasetGroup")
    with pytest.raises(ClientError, match="domain dataset group"):
        personalize.create_recommender(name="nodomain", datasetGroupArn=custom,
                                       recipeArn="arn:aws:personalize:::recipe/aws-ecomm-recommended-for-you")
    assert "aws-ecomm-recommended-for-you" not in {
        r["name"] for r in personalize.list_recipes()["recipes"]}


@pytest.fixture(scope="module")
def video_on_demand(clients, shop, bucket_name, aws_endpoint_url, aws_region):
    """Building_Your_First_Recommender_Video_On_Demand.ipynb, call for call."""
    personalize, personalize_runtime = clients
    interactions_filename, items_filename, user_filename = "interactions.csv", "items.csv", "users.csv"
    upload(aws_endpoint_url, aws_region, bucket_name, interactions_filename, interactions_csv(shop, "Watch", "Click"))
    items = "ITEM_ID,GENRES,CREATION_TIMESTAMP\n" + "".join(
        f"i{i},Genre{shop.item_genre[i]}|All,{int(shop.item_created[i])}\n" for i in range(shop.num_items))
    upload(aws_endpoint_url, aws_region, bucket_name, items_filename, items.encode())
    users = "USER_ID,GENDER\n" + "".join(f"u{u},{'MF'[u % 2]}\n" for u in range(shop.num_users))
    upload(aws_endpoint_url, aws_region, bucket_name, user_filename, users.encode())
    role_arn = ROLE

    response = personalize.create_dataset_group(name='personalize-video-on-demand', domain='VIDEO_ON_DEMAND')
    dataset_group_arn = response['datasetGroupArn']
    wait_status(lambda: personalize.describe_dataset_group(datasetGroupArn=dataset_group_arn), "datasetGroup")
    schema = {"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
              "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                         {"name": "EVENT_TYPE", "type": "string"}, {"name": "TIMESTAMP", "type": "long"}],
              "version": "1.0"}
    interactions_schema_arn = personalize.create_schema(
        name='personalize-demo-interactions-schema', schema=json.dumps(schema), domain='VIDEO_ON_DEMAND')['schemaArn']
    schema = {"type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema",
              "fields": [{"name": "ITEM_ID", "type": "string"},
                         {"name": "GENRES", "type": ["string"], "categorical": True},
                         {"name": "CREATION_TIMESTAMP", "type": "long"}], "version": "1.0"}
    items_schema_arn = personalize.create_schema(
        name='personalize-demo-items-schema', schema=json.dumps(schema), domain='VIDEO_ON_DEMAND')['schemaArn']
    schema = {"type": "record", "name": "Users", "namespace": "com.amazonaws.personalize.schema",
              "fields": [{"name": "USER_ID", "type": "string"},
                         {"name": "GENDER", "type": "string", "categorical": True}], "version": "1.0"}
    users_schema_arn = personalize.create_schema(
        name='personalize-demo-users-schema', schema=json.dumps(schema), domain='VIDEO_ON_DEMAND')['schemaArn']
    datasets = {}
    for dataset_type, name, schema_arn in (("INTERACTIONS", "personalize-demo-interactions", interactions_schema_arn),
                                           ("ITEMS", "personalize-demo-items", items_schema_arn),
                                           ("USERS", "personalize-demo-users", users_schema_arn)):
        datasets[dataset_type] = personalize.create_dataset(
            name=name, datasetType=dataset_type, datasetGroupArn=dataset_group_arn,
            schemaArn=schema_arn)['datasetArn']
        wait_status(lambda arn=datasets[dataset_type]: personalize.describe_dataset(datasetArn=arn), "dataset")
    jobs = []
    for job_name, dataset_type, filename in (("personalize-demo-import-interactions", "INTERACTIONS",
                                              interactions_filename),
                                             ("personalize-demo-import-items", "ITEMS", items_filename),
                                             ("personalize-demo-import-users", "USERS", user_filename)):
        jobs.append(personalize.create_dataset_import_job(
            jobName=job_name, datasetArn=datasets[dataset_type],
            dataSource={"dataLocation": "s3://{}/{}".format(bucket_name, filename)},
            roleArn=role_arn)['datasetImportJobArn'])
    for job in jobs:
        wait_status(lambda job=job: personalize.describe_dataset_import_job(datasetImportJobArn=job),
                    "datasetImportJob")
    available_recipes = personalize.list_recipes(domain='VIDEO_ON_DEMAND')
    recommender_you_watched_x_arn = personalize.create_recommender(
        name='because_you_watched_x', recipeArn='arn:aws:personalize:::recipe/aws-vod-more-like-x',
        datasetGroupArn=dataset_group_arn)["recommenderArn"]
    recommender_top_picks_arn = personalize.create_recommender(
        name='top_picks_for_you', recipeArn='arn:aws:personalize:::recipe/aws-vod-top-picks',
        datasetGroupArn=dataset_group_arn)["recommenderArn"]
    for arn in (recommender_you_watched_x_arn, recommender_top_picks_arn):
        wait_status(lambda arn=arn: personalize.describe_recommender(recommenderArn=arn), "recommender")
    return {"group": dataset_group_arn, "recipes": available_recipes["recipes"],
            "more_like": recommender_you_watched_x_arn, "top_picks": recommender_top_picks_arn}


def test_video_on_demand_notebook_runs_to_recommendations(video_on_demand, clients, shop):
    personalize, personalize_runtime = clients
    assert {r["name"] for r in video_on_demand["recipes"]} == {
        "aws-vod-because-you-watched-x", "aws-vod-more-like-x", "aws-vod-most-popular", "aws-vod-trending-now",
        "aws-vod-top-picks"}
    user = int(np.argmax(np.bincount(shop.users)))
    test_user_id = f"u{user}"
    # Personalize looks at a user's newest 100 events per event type when it leaves watched videos out.
    watches = np.flatnonzero((shop.users == user) & ~shop.purchased)
    newest = watches[np.argsort(-shop.timestamps[watches], kind="stable")[:100]]
    watched = {f"i{i}" for i in shop.items[newest].tolist()}
    test_item_id = f"i{int(np.bincount(shop.items).argmax())}"
    get_recommendations_response = personalize_runtime.get_recommendations(
        recommenderArn=video_on_demand["more_like"], userId=test_user_id, itemId=test_item_id, numResults=20)
    more_like = [item['itemId'] for item in get_recommendations_response['itemList']]
    assert len(more_like) == 20 and not watched & set(more_like)
    genre = shop.item_genre[int(test_item_id[1:])]
    assert np.mean([shop.item_genre[int(i[1:])] == genre for i in more_like]) >= 0.6
    get_recommendations_response = personalize_runtime.get_recommendations(
        recommenderArn=video_on_demand["top_picks"], userId=test_user_id, numResults=20)
    picks = [item['itemId'] for item in get_recommendations_response['itemList']]
    assert len(picks) == 20 and not watched & set(picks)


def test_domain_schemas_are_checked_against_the_group(video_on_demand, clients):
    personalize, _runtime = clients
    missing_genres = {"type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema",
                      "fields": [{"name": "ITEM_ID", "type": "string"},
                                 {"name": "STUDIO", "type": "string", "categorical": True}], "version": "1.0"}
    schema_arn = personalize.create_schema(name="vod-items-without-genres", schema=json.dumps(missing_genres),
                                           domain="VIDEO_ON_DEMAND")["schemaArn"]
    group = personalize.create_dataset_group(name="vod-2", domain="VIDEO_ON_DEMAND")["datasetGroupArn"]
    wait_status(lambda: personalize.describe_dataset_group(datasetGroupArn=group), "datasetGroup")
    with pytest.raises(ClientError, match="GENRES"):
        personalize.create_dataset(name="items", datasetType="ITEMS", datasetGroupArn=group, schemaArn=schema_arn)


def test_too_few_required_events_fail_the_recommender_with_the_reason(clients, bucket_name, aws_endpoint_url,
                                                                      aws_region):
    personalize, _runtime = clients
    views_only = generate(num_users=100, num_items=50, num_interactions=1500, purchase_share=0.0, seed=3)
    upload(aws_endpoint_url, aws_region, bucket_name, "views-only.csv", interactions_csv(views_only, "View", "-"))
    group = personalize.create_dataset_group(name="views-only", domain="ECOMMERCE")["datasetGroupArn"]
    wait_status(lambda: personalize.describe_dataset_group(datasetGroupArn=group), "datasetGroup")
    schema = {"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
              "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                         {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"}],
              "version": "1.0"}
    schema_arn = personalize.create_schema(name="views-only", schema=json.dumps(schema),
                                           domain="ECOMMERCE")["schemaArn"]
    dataset = personalize.create_dataset(name="views-only", datasetType="INTERACTIONS", datasetGroupArn=group,
                                         schemaArn=schema_arn)["datasetArn"]
    wait_status(lambda: personalize.describe_dataset(datasetArn=dataset), "dataset")
    job = personalize.create_dataset_import_job(jobName="views-only", datasetArn=dataset, roleArn=ROLE, dataSource={
        "dataLocation": f"s3://{bucket_name}/views-only.csv"})["datasetImportJobArn"]
    wait_status(lambda: personalize.describe_dataset_import_job(datasetImportJobArn=job), "datasetImportJob")
    arn = personalize.create_recommender(
        name="bought-together", datasetGroupArn=group,
        recipeArn="arn:aws:personalize:::recipe/aws-ecomm-frequently-bought-together")["recommenderArn"]
    deadline = time.monotonic() + WAIT_SECS
    while (described := personalize.describe_recommender(recommenderArn=arn)["recommender"])["status"] != \
            "CREATE FAILED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert described["status"] == "CREATE FAILED"
    assert "at least 1000 Purchase events" in described["failureReason"]


def test_context_learned_from_interactions_changes_the_ranking(clients, shop, bucket_name, aws_endpoint_url,
                                                               aws_region):
    """DEVICE is an Interactions metadata field; phones mostly view genre 0, desktops the rest."""
    personalize, runtime = clients
    rng = np.random.default_rng(4)
    phone = np.where(shop.item_genre[shop.items] == 0, rng.random(len(shop.items)) < 0.9,
                     rng.random(len(shop.items)) < 0.1)
    lines = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,DEVICE"] + [
        f"u{u},i{i},{t},View,{'phone' if p else 'desktop'}"
        for u, i, t, p in zip(shop.users.tolist(), shop.items.tolist(), shop.timestamps.tolist(), phone.tolist())]
    upload(aws_endpoint_url, aws_region, bucket_name, "with-device.csv", "\n".join(lines).encode())
    group = personalize.create_dataset_group(name="with-device", domain="ECOMMERCE")["datasetGroupArn"]
    schema = {"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
              "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                         {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
                         {"name": "DEVICE", "type": "string", "categorical": True}], "version": "1.0"}
    schema_arn = personalize.create_schema(name="with-device", schema=json.dumps(schema),
                                           domain="ECOMMERCE")["schemaArn"]
    dataset = personalize.create_dataset(name="with-device", datasetType="INTERACTIONS", datasetGroupArn=group,
                                         schemaArn=schema_arn)["datasetArn"]
    job = personalize.create_dataset_import_job(jobName="with-device", datasetArn=dataset, roleArn=ROLE, dataSource={
        "dataLocation": f"s3://{bucket_name}/with-device.csv"})["datasetImportJobArn"]
    wait_status(lambda: personalize.describe_dataset_import_job(datasetImportJobArn=job), "datasetImportJob")
    arn = personalize.create_recommender(
        name="most-viewed", datasetGroupArn=group,
        recipeArn="arn:aws:personalize:::recipe/aws-ecomm-popular-items-by-views")["recommenderArn"]
    wait_status(lambda: personalize.describe_recommender(recommenderArn=arn), "recommender")

    def genre0_share(**context) -> float:
        items = [item["itemId"] for item in runtime.get_recommendations(
            recommenderArn=arn, userId="u1", numResults=10, **context)["itemList"]]
        assert len(items) == 10
        return float(np.mean([shop.item_genre[int(i[1:])] == 0 for i in items]))

    plain, on_phone, on_desktop = genre0_share(), genre0_share(context={"DEVICE": "phone"}), \
        genre0_share(context={"DEVICE": "desktop"})
    # Genre 0 is a fifth of the catalogue and ~70 % of phone views, ~3 % of desktop views.
    assert on_phone >= 0.6 and on_desktop <= 0.1 and on_desktop < plain < on_phone
    assert genre0_share(context={"DEVICE": "television"}) == plain  # context never seen in training

    # GetPersonalizedRanking takes the same context: a custom solution in the same group.
    solution = personalize.create_solution(name="rank-with-device", datasetGroupArn=group,
                                           recipeArn="arn:aws:personalize:::recipe/aws-personalized-ranking")
    version = personalize.create_solution_version(solutionArn=solution["solutionArn"])["solutionVersionArn"]
    wait_status(lambda: personalize.describe_solution_version(solutionVersionArn=version), "solutionVersion")
    campaign = personalize.create_campaign(name="rank-with-device", solutionVersionArn=version)["campaignArn"]
    wait_status(lambda: personalize.describe_campaign(campaignArn=campaign), "campaign")
    genre0 = [f"i{i}" for i in shop.items_of_genre(0)[:10]]
    others = [f"i{i}" for i in np.flatnonzero(shop.item_genre != 0)[:10]]

    def ranked_genre0_share(**context) -> float:
        ranked = [item["itemId"] for item in runtime.get_personalized_ranking(
            campaignArn=campaign, userId="u1", inputList=genre0 + others, **context)["personalizedRanking"]]
        assert sorted(ranked) == sorted(genre0 + others)
        return float(np.mean([item in genre0 for item in ranked[:10]]))

    assert ranked_genre0_share(context={"DEVICE": "phone"}) > ranked_genre0_share(context={"DEVICE": "desktop"})
    assert ranked_genre0_share(context={"DEVICE": "television"}) == ranked_genre0_share()
