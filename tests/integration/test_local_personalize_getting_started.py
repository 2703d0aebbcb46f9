"""AWS's custom-recipe getting-started notebooks, as boto3 call sequences, against local_personalize over HTTP.

Follows aws-samples/amazon-personalize-samples getting_started/notebooks/: 1.Building_Your_First_Campaign
(schema, dataset group, dataset, import from S3, aws-user-personalization solution and version, metrics,
campaign with exploration, GetRecommendations), 2.View_Campaign_And_Interactions (event tracker, PutEvents,
recommendations again) and 99.Cleanup; then next_steps/core_use_cases/batch_recommendations/
user_personalization_batch_recommendations_example (its own dataset group, a batch inference job from S3 to
S3, list paginators and deletes). The same calls with the same arguments, except endpoint_url, the role ARN
(the notebooks read it from SSM or create it in IAM), the S3 bucket (moto over HTTP) and the data: a small
MovieLens-like set generated here (synthetic_shop's ratings view) instead of ml-100k / Last.fm.
"""

from __future__ import annotations

import json
import time
import uuid

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

from synthetic_shop import MOVIE_GENRES, csv_bytes, generate
from tests.fixtures.local_personalize import LocalPersonalizeServer, personalize_clients
from tests.integration.workers_support import wait_active

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shop():
    # MovieLens-100k in miniature: users rate mostly their favourite genre, and rate it higher.
    return generate(num_users=200, num_items=150, num_interactions=6000, genre_names=MOVIE_GENRES[:6],
                    unique_pairs=True, seed=21)


@pytest.fixture(scope="module")
def server(tmp_path_factory, aws_endpoint_url):
    with LocalPersonalizeServer(tmp_path_factory.mktemp("lp-getting-started") / "data", aws_endpoint_url) as running:
        yield running


@pytest.fixture(scope="module")
def bucket(aws_endpoint_url, aws_region):
    name = f"lp-getting-started-{int(time.time() * 1000)}"
    boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def first_campaign(server, shop, bucket, aws_endpoint_url, aws_region):
    """1.Building_Your_First_Campaign.ipynb, cell for cell."""
    personalize, _events, personalize_runtime = personalize_clients(server.url)
    filename = "movie-lens-100k.csv"
    # data = data[data['RATING'] > 3]; data = data[['USER_ID', 'ITEM_ID', 'TIMESTAMP']]; data.csv_bytes(...)
    data = [(user, item, ts) for user, item, rating, ts in shop.ratings() if rating > 3]
    boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region).put_object(
        Bucket=bucket, Key=filename, Body=csv_bytes(["USER_ID", "ITEM_ID", "TIMESTAMP"], data))
    schema = {
        "type": "record",
        "name": "Interactions",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
        ],
        "version": "1.0",
    }
    create_schema_response = personalize.create_schema(name="personalize-demo-schema", schema=json.dumps(schema))
    schema_arn = create_schema_response['schemaArn']
    create_dataset_group_response = personalize.create_dataset_group(name="personalize-launch-demo")
    dataset_group_arn = create_dataset_group_response['datasetGroupArn']
    wait_active(lambda: personalize.describe_dataset_group(datasetGroupArn=dataset_group_arn), "datasetGroup")
    dataset_type = "INTERACTIONS"
    create_dataset_response = personalize.create_dataset(
        name="personalize-launch-interactions", datasetType=dataset_type, datasetGroupArn=dataset_group_arn,
        schemaArn=schema_arn)
    dataset_arn = create_dataset_response['datasetArn']
    wait_active(lambda: personalize.describe_dataset(datasetArn=dataset_arn), "dataset")
    personalizeiamrolearn = "arn:aws:iam::000000000000:role/PersonalizeRole"  # the notebook: SSM parameter
    create_dataset_import_job_response = personalize.create_dataset_import_job(
        jobName="personalize-demo-import1",
        datasetArn=dataset_arn,
        dataSource={"dataLocation": "s3://{}/{}".format(bucket, filename)},
        roleArn=personalizeiamrolearn,
    )
    dataset_import_job_arn = create_dataset_import_job_response['datasetImportJobArn']
    wait_active(lambda: personalize.describe_dataset_import_job(datasetImportJobArn=dataset_import_job_arn),
                    "datasetImportJob")
    list_recipes_response = personalize.list_recipes()
    recipe_arn = "arn:aws:personalize:::recipe/aws-user-personalization"
    create_solution_response = personalize.create_solution(
        name="personalize-demo-soln-user-personalization", datasetGroupArn=dataset_group_arn, recipeArn=recipe_arn)
    solution_arn = create_solution_response['solutionArn']
    create_solution_version_response = personalize.create_solution_version(solutionArn=solution_arn)
    solution_version_arn = create_solution_version_response['solutionVersionArn']
    wait_active(lambda: personalize.describe_solution_version(solutionVersionArn=solution_version_arn),
                    "solutionVersion")
    get_solution_metrics_response = personalize.get_solution_metrics(solutionVersionArn=solution_version_arn)
    create_campaign_response = personalize.create_campaign(
        name="personalize-demo-camp",
        solutionVersionArn=solution_version_arn,
        minProvisionedTPS=1,
        campaignConfig={"itemExplorationConfig": {"explorationWeight": "0.5"}},
    )
    campaign_arn = create_campaign_response['campaignArn']
    wait_active(lambda: personalize.describe_campaign(campaignArn=campaign_arn), "campaign")
    return {"personalize": personalize, "runtime": personalize_runtime, "recipes": list_recipes_response,
            "metrics": get_solution_metrics_response, "dataset_group_arn": dataset_group_arn,
            "dataset_arn": dataset_arn, "schema_arn": schema_arn, "solution_arn": solution_arn,
            "solution_version_arn": solution_version_arn, "campaign_arn": campaign_arn, "data": data}


def favourite_share(shop, item_ids: list[str], user: int) -> float:
    """Share of MovieLens-style item ids ("1"-based) in the user's ("1"-based) favourite genre."""
    genres = shop.item_genre[[int(item) - 1 for item in item_ids]]
    return float(np.mean(genres == shop.user_genre[user - 1]))


def test_first_campaign_recommends_the_users_taste(first_campaign, shop):
    personalize, personalize_runtime = first_campaign["personalize"], first_campaign["runtime"]
    recipes = {r["recipeArn"] for r in first_campaign["recipes"]["recipes"]}
    assert "arn:aws:personalize:::recipe/aws-user-personalization" in recipes
    metrics = first_campaign["metrics"]
    assert metrics["solutionVersionArn"] == first_campaign["solution_version_arn"]
    assert 0 < metrics["metrics"]["normalized_discounted_cumulative_gain_at_10"] <= 1
    campaign = personalize.describe_campaign(campaignArn=first_campaign["campaign_arn"])["campaign"]
    assert campaign["minProvisionedTPS"] == 1
    assert campaign["campaignConfig"]["itemExplorationConfig"]["explorationWeight"] == "0.5"
    shares = []
    for user_id in sorted({user for user, _, _ in first_campaign["data"]})[:20]:
        get_recommendations_response = personalize_runtime.get_recommendations(
            campaignArn=first_campaign["campaign_arn"], userId=str(user_id))
        item_list = get_recommendations_response['itemList']
        assert len(item_list) == 25  # the default numResults
        shares.append(favourite_share(shop, [item['itemId'] for item in item_list], user_id))
    # Six genres: popularity alone would put about a sixth of each list in the user's favourite.
    assert np.mean(shares) >= 0.4


def test_view_campaign_and_interactions_then_cleanup(first_campaign, shop, server):
    """2.View_Campaign_And_Interactions.ipynb, then 99.Cleanup.ipynb."""
    personalize, personalize_runtime = first_campaign["personalize"], first_campaign["runtime"]
    personalize_events = personalize_clients(server.url)[1]
    campaign_arn, dataset_group_arn = first_campaign["campaign_arn"], first_campaign["dataset_group_arn"]
    response = personalize.create_event_tracker(name='MovieClickTracker', datasetGroupArn=dataset_group_arn)
    TRACKING_ID = response['trackingId']
    event_tracker_arn = response['eventTrackerArn']
    session_dict = {}

    def send_movie_click(USER_ID, ITEM_ID):
        try:
            session_ID = session_dict[USER_ID]
        except KeyError:
            session_dict[USER_ID] = str(uuid.uuid1())
            session_ID = session_dict[USER_ID]
        event = {"itemId": str(ITEM_ID)}
        event_json = json.dumps(event)
        personalize_events.put_events(
            trackingId=TRACKING_ID,
            userId=USER_ID,
            sessionId=session_ID,
            eventList=[{'sentAt': int(time.time()), 'eventType': 'EVENT_TYPE', 'properties': event_json}],
        )

    # A light user, and a movie of a genre they never watched (the notebook clicks "Gattaca").
    counts = np.bincount([user for user, _, _ in first_campaign["data"]])
    user_id = int(np.flatnonzero(counts == counts[counts > 0].min())[0])
    before = [i['itemId'] for i in personalize_runtime.get_recommendations(
        campaignArn=campaign_arn, userId=str(user_id))['itemList']]
    tastes = (shop.user_genre[user_id - 1], shop.user_second_genre[user_id - 1])
    other = next(g for g in range(shop.num_genres) if g not in tastes)
    for movie_to_click in (shop.items_of_genre(other)[:5] + 1).tolist():
        send_movie_click(USER_ID=str(user_id), ITEM_ID=movie_to_click)
    get_recommendations_response = personalize_runtime.get_recommendations(
        campaignArn=campaign_arn, userId=str(user_id))
    after = [item['itemId'] for item in get_recommendations_response['itemList']]
    assert after != before
    def share_of_other(items: list[str]) -> float:
        return float(np.mean([shop.item_genre[int(i) - 1] == other for i in items]))

    assert share_of_other(after) > share_of_other(before)

    # 99.Cleanup.ipynb (without its sleeps)
    personalize.delete_campaign(campaignArn=campaign_arn)
    personalize.delete_solution(solutionArn=first_campaign["solution_arn"])
    personalize.delete_event_tracker(eventTrackerArn=event_tracker_arn)
    personalize.delete_dataset(datasetArn=first_campaign["dataset_arn"])
    # The notebook then deletes an EVENT_INTERACTIONS dataset that event trackers created in 2019; Personalize
    # no longer makes one, so the call answers ResourceNotFoundException there as here.
    event_interactions_dataset_arn = first_campaign["dataset_arn"].replace("INTERACTIONS", "EVENT_INTERACTIONS")
    with pytest.raises(ClientError) as missing:
        personalize.delete_dataset(datasetArn=event_interactions_dataset_arn)
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    personalize.delete_schema(schemaArn=first_campaign["schema_arn"])
    with pytest.raises(ClientError):
        personalize.describe_campaign(campaignArn=campaign_arn)


def test_batch_recommendations_notebook(server, shop, bucket, aws_endpoint_url, aws_region):
    """user_personalization_batch_recommendations_example.ipynb, cell for cell from the dataset group on."""
    personalize, _events, _runtime = personalize_clients(server.url)
    s3 = boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region)
    bucket_name = bucket
    interactions_filename = "interactions.csv"
    # The notebook's Last.fm user_artists.dat becomes USER_ID, ITEM_ID, TIMESTAMP rows.
    s3.put_object(
        Bucket=bucket_name, Key=interactions_filename,
        Body=csv_bytes(["USER_ID", "ITEM_ID", "TIMESTAMP"], [(u, i, ts) for u, i, _, ts in shop.ratings()]))
    create_dataset_group_response = personalize.create_dataset_group(name="personalize-batch-recommendations-dg")
    dataset_group_arn = create_dataset_group_response['datasetGroupArn']
    wait_active(lambda: personalize.describe_dataset_group(datasetGroupArn=dataset_group_arn), "datasetGroup")
    interactions_schema = {
        "type": "record",
        "name": "Interactions",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
        ],
        "version": "1.0",
    }
    create_schema_response = personalize.create_schema(
        name="personalize-batch-recommendations-interactions", schema=json.dumps(interactions_schema))
    schema_arn = create_schema_response['schemaArn']
    dataset_type = "INTERACTIONS"
    create_dataset_response = personalize.create_dataset(
        name="personalize-batch-recommendations-ds", datasetType=dataset_type, datasetGroupArn=dataset_group_arn,
        schemaArn=schema_arn)
    interactions_dataset_arn = create_dataset_response['datasetArn']
    role_arn = "arn:aws:iam::000000000000:role/PersonalizeRoleBatchRecommendations"  # the notebook: iam.create_role
    create_dataset_import_job_response = personalize.create_dataset_import_job(
        jobName="personalize-batch-recommendations",
        datasetArn=interactions_dataset_arn,
        dataSource={"dataLocation": "s3://{}/{}".format(bucket_name, interactions_filename)},
        roleArn=role_arn,
    )
    dataset_import_job_arn = create_dataset_import_job_response['datasetImportJobArn']
    wait_active(lambda: personalize.describe_dataset_import_job(datasetImportJobArn=dataset_import_job_arn),
                    "datasetImportJob")
    personalize.list_recipes()
    recipe_arn = "arn:aws:personalize:::recipe/aws-user-personalization"
    create_solution_response = personalize.create_solution(
        name="personalize-batch-recommendations-user-personalization", datasetGroupArn=dataset_group_arn,
        recipeArn=recipe_arn)
    solution_arn = create_solution_response['solutionArn']
    create_solution_version_response = personalize.create_solution_version(solutionArn=solution_arn)
    solution_version_arn = create_solution_version_response['solutionVersionArn']
    wait_active(lambda: personalize.describe_solution_version(solutionVersionArn=solution_version_arn),
                    "solutionVersion")

    # users_df.sample(3).index.tolist(): here the three lightest users, whose favourite genre is not used up
    # (a heavy user has rated most of its 25 movies, and nobody is recommended what they rated).
    batch_users = (np.argsort(np.bincount(shop.users, minlength=shop.num_users), kind="stable")[:3] + 1).tolist()
    json_input_filename = "json_input.json"
    json_input = "".join('{"userId": "' + str(user_id) + '"}\n' for user_id in batch_users)
    s3.put_object(Bucket=bucket_name, Key=json_input_filename, Body=json_input.encode())
    s3_input_path = "s3://" + bucket_name + "/" + json_input_filename
    s3_output_path = "s3://" + bucket_name + "/"
    batchInferenceJobArn = personalize.create_batch_inference_job(
        solutionVersionArn=solution_version_arn,
        jobName="Batch-Inference-Job",
        roleArn=role_arn,
        jobInput={"s3DataSource": {"path": s3_input_path}},
        jobOutput={"s3DataDestination": {"path": s3_output_path}},
    )
    batchInferenceJobArn = batchInferenceJobArn['batchInferenceJobArn']
    wait_active(lambda: personalize.describe_batch_inference_job(batchInferenceJobArn=batchInferenceJobArn),
                    "batchInferenceJob")
    export_name = json_input_filename + ".out"
    lines = s3.get_object(Bucket=bucket_name, Key=export_name)["Body"].read().decode().splitlines()
    users = []
    for text in lines:
        line = json.loads(text)
        users.append(int(line['input']['userId']))
        recommended = line['output']['recommendedItems']
        assert len(recommended) == 25 and favourite_share(shop, recommended, users[-1]) >= 0.3
    assert users == batch_users

    # The clean-up cells: paginators find the resources, then each is deleted.
    def listed(operation: str, key: str, arn: str) -> list[str]:
        return [r[arn] for page in personalize.get_paginator(operation).paginate() for r in page[key]]

    assert solution_arn in listed('list_solutions', "solutions", "solutionArn")
    personalize.delete_solution(solutionArn=solution_arn)
    assert interactions_dataset_arn in listed('list_datasets', "datasets", "datasetArn")
    personalize.delete_dataset(datasetArn=interactions_dataset_arn)
    assert schema_arn in listed('list_schemas', "schemas", "schemaArn")
    personalize.delete_schema(schemaArn=schema_arn)
    assert dataset_group_arn in listed('list_dataset_groups', "datasetGroups", "datasetGroupArn")
    personalize.delete_dataset_group(datasetGroupArn=dataset_group_arn)
    assert dataset_group_arn not in listed('list_dataset_groups', "datasetGroups", "datasetGroupArn")
