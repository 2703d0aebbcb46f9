"""AWS's "Personalize POC in a box" workshop, as boto3 call sequences, against local_personalize over HTTP.

Follows aws-samples/amazon-personalize-samples next_steps/workshops/POC_in_a_box/completed/01 … 06: interactions
(watch and click events derived from ratings) and item metadata (GENRE, YEAR) imported from S3; solutions and
versions for aws-user-personalization, aws-sims and aws-personalized-ranking with their metrics; three
campaigns; genre, decade and event-type filters; similar items, recommendations per user and per filter,
an event tracker and PutEvents changing what is recommended, personalized ranking, a batch inference job; then
the clean-up notebook. The same calls with the same arguments, except endpoint_url; the S3 bucket and the IAM
role live in moto over HTTP (bucket policy and role calls as the notebook makes them), and the data is a small
MovieLens-like set generated here (synthetic_shop's ratings and movies views) instead of ml-latest-small.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections import Counter

import boto3
import numpy as np
import pytest

from synthetic_shop import MOVIE_GENRES, csv_bytes, generate
from tests.fixtures.local_personalize import LocalPersonalizeServer, personalize_clients

pytestmark = pytest.mark.integration
WAIT_SECS = 240.0


def wait_all(describe, arns: list[str], key: str) -> None:
    """The notebooks' "in progress" loops over several resources, polling every 0.2 s instead of 60 s."""
    in_progress = list(arns)
    deadline = time.monotonic() + WAIT_SECS
    while in_progress and time.monotonic() < deadline:
        for arn in list(in_progress):
            resource = describe(arn)[key]
            assert resource["status"] != "CREATE FAILED", resource.get("failureReason")
            if resource["status"] == "ACTIVE":
                in_progress.remove(arn)
        time.sleep(0.2)
    assert not in_progress, f"{key} still in progress after {WAIT_SECS}s: {in_progress}"


@pytest.fixture(scope="module")
def shop():
    return generate(num_users=250, num_items=160, num_interactions=7000, genre_names=MOVIE_GENRES[:8],
                    unique_pairs=True, seed=33)


@pytest.fixture(scope="module")
def server(tmp_path_factory, aws_endpoint_url):
    with LocalPersonalizeServer(tmp_path_factory.mktemp("lp-poc") / "data", aws_endpoint_url) as running:
        yield running


@pytest.fixture(scope="module")
def poc(server, shop, aws_endpoint_url, aws_region):
    """Notebooks 01 (interactions), 02 (item metadata), 03 (solutions) and 04 (campaigns, filters)."""
    personalize, personalize_events, personalize_runtime = personalize_clients(server.url)
    # 01: ratings.csv → watch (rating > 3) and click (rating > 1) events, sorted by time.
    original_data = shop.ratings()
    watched = [(u, i, ts, "watch") for u, i, rating, ts in original_data if rating > 3]
    clicked = [(u, i, ts, "click") for u, i, rating, ts in original_data if rating > 1]
    interactions_df = sorted(clicked + watched, key=lambda row: row[2])
    interactions_filename = "interactions.csv"
    create_dataset_group_response = personalize.create_dataset_group(name="personalize-poc-movielens")
    dataset_group_arn = create_dataset_group_response['datasetGroupArn']
    wait_all(lambda arn: personalize.describe_dataset_group(datasetGroupArn=arn), [dataset_group_arn],
             "datasetGroup")
    interactions_schema = {
        "type": "record",
        "name": "Interactions",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "EVENT_TYPE", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
        ],
        "version": "1.0",
    }
    create_schema_response = personalize.create_schema(
        name="personalize-poc-movielens-interactions", schema=json.dumps(interactions_schema))
    interaction_schema_arn = create_schema_response['schemaArn']
    dataset_type = "INTERACTIONS"
    create_dataset_response = personalize.create_dataset(
        name="personalize-poc-movielens-ints", datasetType=dataset_type, datasetGroupArn=dataset_group_arn,
        schemaArn=interaction_schema_arn)
    interactions_dataset_arn = create_dataset_response['datasetArn']

    s3 = boto3.client('s3', endpoint_url=aws_endpoint_url, region_name=aws_region)
    account_id = "000000000000"
    bucket_name = account_id + "-" + aws_region + "-" + "personalizepocvod" + str(int(time.time() * 1000))
    s3.create_bucket(Bucket=bucket_name)
    s3.put_object(Bucket=bucket_name, Key=interactions_filename,
                  Body=csv_bytes(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"], interactions_df))
    policy = {
        "Version": "2012-10-17",
        "Id": "PersonalizeS3BucketAccessPolicy",
        "Statement": [{
            "Sid": "PersonalizeS3BucketAccessPolicy",
            "Effect": "Allow",
            "Principal": {"Service": "personalize.amazonaws.com"},
            "Action": ["s3:*Object", "s3:ListBucket"],
            "Resource": ["arn:aws:s3:::{}".format(bucket_name), "arn:aws:s3:::{}/*".format(bucket_name)],
        }],
    }
    s3.put_bucket_policy(Bucket=bucket_name, Policy=json.dumps(policy))
    iam = boto3.client("iam", endpoint_url=aws_endpoint_url, region_name=aws_region)
    role_name = f"PersonalizeRolePOC{int(time.time() * 1000)}"
    assume_role_policy_document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "personalize.amazonaws.com"},
                       "Action": "sts:AssumeRole"}],
    }
    create_role_response = iam.create_role(
        RoleName=role_name, AssumeRolePolicyDocument=json.dumps(assume_role_policy_document))
    # moto knows no AWS managed policies, so the notebook's two are created under their names first.
    for name, path in (("AmazonPersonalizeFullAccess", "/service-role/"), ("AmazonS3FullAccess", "/")):
        iam.create_policy(PolicyName=name, Path=path, PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    policies = {p["PolicyName"]: p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"]}
    iam.attach_role_policy(RoleName=role_name, PolicyArn=policies["AmazonPersonalizeFullAccess"])
    iam.attach_role_policy(PolicyArn=policies["AmazonS3FullAccess"], RoleName=role_name)
    role_arn = create_role_response["Role"]["Arn"]
    create_dataset_import_job_response = personalize.create_dataset_import_job(
        jobName="personalize-poc-import1",
        datasetArn=interactions_dataset_arn,
        dataSource={"dataLocation": "s3://{}/{}".format(bucket_name, interactions_filename)},
        roleArn=role_arn,
    )
    dataset_import_job_arn = create_dataset_import_job_response['datasetImportJobArn']
    wait_all(lambda arn: personalize.describe_dataset_import_job(datasetImportJobArn=arn), [dataset_import_job_arn],
             "datasetImportJob")

    # 02: movies.csv → ITEM_ID, GENRE, YEAR (the year extracted from the title).
    itemmetadata_df = [(movie_id, genres, re.match(r'.*\((.*)\).*', title).group(1))
                       for movie_id, title, genres in shop.movies()]
    itemmetadata_filename = "item-meta.csv"
    itemmetadata_schema = {
        "type": "record",
        "name": "Items",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "ITEM_ID", "type": "string"},
            {"name": "GENRE", "type": "string", "categorical": True},
            {"name": "YEAR", "type": "int"},
        ],
        "version": "1.0",
    }
    create_schema_response = personalize.create_schema(
        name="personalize-poc-movielens-item", schema=json.dumps(itemmetadata_schema))
    itemmetadataschema_arn = create_schema_response['schemaArn']
    dataset_type = "ITEMS"
    create_dataset_response = personalize.create_dataset(
        name="personalize-poc-movielens-items", datasetType=dataset_type, datasetGroupArn=dataset_group_arn,
        schemaArn=itemmetadataschema_arn)
    items_dataset_arn = create_dataset_response['datasetArn']
    s3.put_object(Bucket=bucket_name, Key=itemmetadata_filename,
                  Body=csv_bytes(["ITEM_ID", "GENRE", "YEAR"], itemmetadata_df))
    create_dataset_import_job_response = personalize.create_dataset_import_job(
        jobName="personalize-poc-item-import1",
        datasetArn=items_dataset_arn,
        dataSource={"dataLocation": "s3://{}/{}".format(bucket_name, itemmetadata_filename)},
        roleArn=role_arn,
    )
    dataset_import_job_arn = create_dataset_import_job_response['datasetImportJobArn']
    wait_all(lambda arn: personalize.describe_dataset_import_job(datasetImportJobArn=arn), [dataset_import_job_arn],
             "datasetImportJob")

    # 03: three solutions, trained side by side, and their metrics.
    recipes = personalize.list_recipes()
    solutions, versions, metrics = {}, {}, {}
    for short, name, recipe in (("userpersonalization", "personalize-poc-userpersonalization",
                                 "aws-user-personalization"), ("sims", "personalize-poc-sims", "aws-sims"),
                                ("rerank", "personalize-poc-rerank", "aws-personalized-ranking")):
        create_solution_response = personalize.create_solution(
            name=name, datasetGroupArn=dataset_group_arn, recipeArn=f"arn:aws:personalize:::recipe/{recipe}")
        solutions[short] = create_solution_response['solutionArn']
        versions[short] = personalize.create_solution_version(solutionArn=solutions[short])['solutionVersionArn']
    wait_all(lambda arn: personalize.describe_solution_version(solutionVersionArn=arn), list(versions.values()),
             "solutionVersion")
    for short, arn in versions.items():
        metrics[short] = personalize.get_solution_metrics(solutionVersionArn=arn)

    # 04: campaigns and filters.
    campaigns = {}
    for short, name in (("userpersonalization", "personalize-poc-userpersonalization"),
                        ("sims", "personalize-poc-SIMS"), ("rerank", "personalize-poc-rerank")):
        campaigns[short] = personalize.create_campaign(
            name=name, solutionVersionArn=versions[short], minProvisionedTPS=1)['campaignArn']
    wait_all(lambda arn: personalize.describe_campaign(campaignArn=arn), list(campaigns.values()), "campaign")
    genre_val_list = []
    for val in {genres for _, _, genres in shop.movies()}:
        genre_val_list.extend(val.split('|') if '|' in val else [] if '(' in val else [val])
    genres_to_filter = random.Random(4).sample(sorted(set(genre_val_list)), 7)
    meta_filter_arns = []
    for genre in genres_to_filter:
        createfilter_response = personalize.create_filter(
            name=genre, datasetGroupArn=dataset_group_arn,
            filterExpression='INCLUDE ItemID WHERE Items.GENRE IN ("' + genre + '")')
        meta_filter_arns.append(createfilter_response['filterArn'])
    createwatchedfilter_response = personalize.create_filter(
        name='watched', datasetGroupArn=dataset_group_arn,
        filterExpression='INCLUDE ItemID WHERE Interactions.event_type IN ("watch")')
    createunwatchedfilter_response = personalize.create_filter(
        name='unwatched', datasetGroupArn=dataset_group_arn,
        filterExpression='EXCLUDE ItemID WHERE Interactions.event_type IN ("watch")')
    createdecadefilter_response = personalize.create_filter(
        name='1970s', datasetGroupArn=dataset_group_arn,
        filterExpression='INCLUDE ItemID WHERE Items.YEAR >= 1970 AND Items.YEAR < 1980')
    interaction_filter_arns = [createwatchedfilter_response['filterArn'], createunwatchedfilter_response['filterArn']]
    decade_filter_arns = [createdecadefilter_response['filterArn']]
    return {"personalize": personalize, "events": personalize_events, "runtime": personalize_runtime,
            "s3": s3, "iam": iam, "bucket_name": bucket_name, "role_name": role_name, "role_arn": role_arn,
            "dataset_group_arn": dataset_group_arn, "interactions_dataset_arn": interactions_dataset_arn,
            "items_dataset_arn": items_dataset_arn, "interaction_schema_arn": interaction_schema_arn,
            "itemmetadataschema_arn": itemmetadataschema_arn, "recipes": recipes, "solutions": solutions,
            "versions": versions, "metrics": metrics, "campaigns": campaigns, "meta_filter_arns": meta_filter_arns,
            "genres_to_filter": genres_to_filter, "interaction_filter_arns": interaction_filter_arns,
            "decade_filter_arns": decade_filter_arns, "policies": [
                p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]],
            "interactions": interactions_df, "items": {str(movie_id): (genres.split("|"), int(year))
                                                        for movie_id, genres, year in itemmetadata_df}}


def test_solutions_have_metrics(poc):
    recipes = {r["recipeArn"].rsplit("/", 1)[1] for r in poc["recipes"]["recipes"]}
    assert {"aws-user-personalization", "aws-sims", "aws-personalized-ranking"} <= recipes
    for short, response in poc["metrics"].items():
        assert response["solutionVersionArn"] == poc["versions"][short]
        assert 0 <= response["metrics"]["normalized_discounted_cumulative_gain_at_10"] <= 1
        assert response["metrics"]["coverage"] > 0


def test_interacting_with_campaigns_and_filters(poc, shop):
    """05_Interacting_with_Campaigns_and_Filters.ipynb up to personalized ranking."""
    personalize, personalize_runtime = poc["personalize"], poc["runtime"]
    personalize_events, items = poc["events"], poc["items"]
    # Similar items: the same genre dominates each seed movie's list.
    shares = []
    for movie in random.Random(5).sample(sorted(items, key=int), 5):
        get_recommendations_response = personalize_runtime.get_recommendations(
            campaignArn=poc["campaigns"]["sims"], itemId=str(movie))
        item_list = get_recommendations_response['itemList']
        assert item_list and str(movie) not in {item['itemId'] for item in item_list}
        shares.append(np.mean([items[item['itemId']][0][0] == items[str(movie)][0][0] for item in item_list]))
    assert np.mean(shares) >= 0.4

    users = random.Random(6).sample(range(1, shop.num_users + 1), 3)
    for user_id in users:
        get_recommendations_response = personalize_runtime.get_recommendations(
            campaignArn=poc["campaigns"]["userpersonalization"], userId=str(user_id))
        assert len(get_recommendations_response['itemList']) == 25
    user = users[-1]

    def get_by_filter(user_id, filter_arn, **extra) -> list[str]:
        get_recommendations_response = personalize_runtime.get_recommendations(
            campaignArn=poc["campaigns"]["userpersonalization"], userId=str(user_id), filterArn=filter_arn, **extra)
        return [item['itemId'] for item in get_recommendations_response['itemList']]

    for genre, filter_arn in zip(poc["genres_to_filter"], poc["meta_filter_arns"]):
        shelf = get_by_filter(user, filter_arn)
        assert shelf and all(genre in items[item][0] for item in shelf)
        assert len(shelf) == min(25, sum(genre in genres for genres, _ in items.values()))
    decade = get_by_filter(user, poc["decade_filter_arns"][0])
    assert decade and all(1970 <= items[item][1] < 1980 for item in decade)

    response = personalize.create_event_tracker(name='MovieTracker', datasetGroupArn=poc["dataset_group_arn"])
    TRACKING_ID = response['trackingId']
    poc["event_tracker_arn"] = response['eventTrackerArn']
    session_dict = {}

    def send_movie_click(USER_ID, ITEM_ID, EVENT_TYPE):
        try:
            session_ID = session_dict[str(USER_ID)]
        except KeyError:
            session_dict[str(USER_ID)] = str(uuid.uuid1())
            session_ID = session_dict[str(USER_ID)]
        event = {"itemId": str(ITEM_ID)}
        event_json = json.dumps(event)
        personalize_events.put_events(
            trackingId=TRACKING_ID, userId=str(USER_ID), sessionId=session_ID,
            eventList=[{'sentAt': int(time.time()), 'eventType': str(EVENT_TYPE), 'properties': event_json}])

    user_id = user
    before = [item['itemId'] for item in personalize_runtime.get_recommendations(
        campaignArn=poc["campaigns"]["userpersonalization"], userId=str(user_id))['itemList']]
    tastes = {shop.genre_name(int(shop.user_genre[user_id - 1])),
              shop.genre_name(int(shop.user_second_genre[user_id - 1]))}
    # The notebook clicks three random movies; here the three most watched outside the user's tastes, so that
    # the change shows whatever the user's history (a random pick may move nothing in a long one).
    watched = Counter(str(i) for _, i, _, kind in poc["interactions"] if kind == "watch")
    movies = [m for m, _ in watched.most_common() if not tastes & set(items[m][0])][:3]
    for movie in movies:
        send_movie_click(USER_ID=user_id, ITEM_ID=movie, EVENT_TYPE='click')
    after = [item['itemId'] for item in personalize_runtime.get_recommendations(
        campaignArn=poc["campaigns"]["userpersonalization"], userId=str(user_id))['itemList']]
    assert after != before

    history = {str(i) for u, i, _, kind in poc["interactions"] if u == user_id and kind == "watch"}
    watched_filter, unwatched_filter = poc["interaction_filter_arns"]
    assert set(get_by_filter(user, watched_filter)) <= history
    unwatched = get_by_filter(user, unwatched_filter)
    assert unwatched and not set(unwatched) & history
    filter_arn = unwatched_filter  # the loop variable the notebook's next cell reuses
    top_unwatched = get_by_filter(user_id, filter_arn, numResults=4)
    for item in top_unwatched:
        send_movie_click(USER_ID=user_id, ITEM_ID=item, EVENT_TYPE='watch')
    assert not set(get_by_filter(user, unwatched_filter)) & (history | set(top_unwatched))
    assert set(get_by_filter(user, watched_filter)) <= history | set(top_unwatched)

    rerank_items = random.Random(7).sample(sorted(items, key=int), 25)
    rerank_item_list = [str(item) for item in rerank_items]
    get_recommendations_response_rerank = personalize_runtime.get_personalized_ranking(
        campaignArn=poc["campaigns"]["rerank"], userId=str(user), inputList=rerank_item_list)
    ranked = [item['itemId'] for item in get_recommendations_response_rerank['personalizedRanking']]
    assert sorted(ranked) == sorted(rerank_item_list)
    # Movies of the user's favourite genre move up.
    favourite = shop.genre_name(int(shop.user_genre[user - 1]))
    positions = [n for n, item in enumerate(ranked) if favourite in items[item][0]]
    if positions and len(positions) < len(ranked):
        assert np.mean(positions) < (len(ranked) - 1) / 2


def test_batch_inference_then_clean_up(poc, shop):
    """05's batch inference cells, then 06_Clean_Up_Resources.ipynb."""
    personalize, s3, bucket_name = poc["personalize"], poc["s3"], poc["bucket_name"]
    users = random.Random(6).sample(range(1, shop.num_users + 1), 3)
    json_input_filename = "json_input.json"
    s3.put_object(Bucket=bucket_name, Key=json_input_filename,
                  Body="".join('{"userId": "' + str(user_id) + '"}\n' for user_id in users).encode())
    s3_input_path = "s3://" + bucket_name + "/" + json_input_filename
    s3_output_path = "s3://" + bucket_name + "/"
    batchInferenceJobArn = personalize.create_batch_inference_job(
        solutionVersionArn=poc["versions"]["userpersonalization"],
        jobName="VOD-POC-Batch-Inference-Job-UserPersonalization_" + str(round(time.time() * 1000)),
        roleArn=poc["role_arn"],
        jobInput={"s3DataSource": {"path": s3_input_path}},
        jobOutput={"s3DataDestination": {"path": s3_output_path}},
    )
    batchInferenceJobArn = batchInferenceJobArn['batchInferenceJobArn']
    wait_all(lambda arn: personalize.describe_batch_inference_job(batchInferenceJobArn=arn), [batchInferenceJobArn],
             "batchInferenceJob")
    export_name = json_input_filename + ".out"
    lines = [json.loads(line) for line in
             s3.get_object(Bucket=bucket_name, Key=export_name)["Body"].read().decode().splitlines()]
    assert [line['input']['userId'] for line in lines] == [str(user) for user in users]
    assert all(len(line['output']['recommendedItems']) == 25 for line in lines)

    # 06_Clean_Up_Resources.ipynb
    for campaign_arn in poc["campaigns"].values():
        personalize.delete_campaign(campaignArn=campaign_arn)
    if "event_tracker_arn" in poc:
        personalize.delete_event_tracker(eventTrackerArn=poc["event_tracker_arn"])
    for filter_arn in poc["meta_filter_arns"] + poc["interaction_filter_arns"] + poc["decade_filter_arns"]:
        personalize.delete_filter(filterArn=filter_arn)
    for solution_arn in poc["solutions"].values():
        personalize.delete_solution(solutionArn=solution_arn)
    personalize.delete_dataset(datasetArn=poc["items_dataset_arn"])
    personalize.delete_dataset(datasetArn=poc["interactions_dataset_arn"])
    personalize.delete_schema(schemaArn=poc["interaction_schema_arn"])
    personalize.delete_schema(schemaArn=poc["itemmetadataschema_arn"])
    personalize.delete_dataset_group(datasetGroupArn=poc["dataset_group_arn"])
    iam, role_name = poc["iam"], poc["role_name"]
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    assert len(attached) == 2
    for policy_arn in poc["policies"]:
        iam.detach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
    iam.delete_role(RoleName=role_name)
    groups = personalize.list_dataset_groups()["datasetGroups"]
    assert poc["dataset_group_arn"] not in {group["datasetGroupArn"] for group in groups}
