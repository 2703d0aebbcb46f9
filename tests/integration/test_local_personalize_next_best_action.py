"""Next best action through real boto3 against a running local_personalize (issue 9 item 6).

The documented flow (native-recipe-next-best-action.html, actions-datasets.html): Actions and Action
interactions schemas and datasets, CSV imports from S3, PutActions / PutActionInteractions with the
dataset's own trackingId, a solution version of aws-next-best-action, a campaign, GetActionRecommendations.
"""

from __future__ import annotations

import csv
import io
import json
import random
import time
import uuid

import boto3
import pytest

from tests.fixtures.local_personalize import LocalPersonalizeServer, personalize_clients
from tests.integration.workers_support import ROLE, wait_active

pytestmark = pytest.mark.integration
NOW = int(time.time())
FAMILIES = {0: [f"a{i}" for i in range(6)], 1: [f"a{i}" for i in range(6, 12)]}
EXPIRED, ONCE_ONLY, DAILY = "a5", "a4", "a3"

actions_schema = {"type": "record", "name": "Actions", "namespace": "com.amazonaws.personalize.schema",
                  "fields": [{"name": "ACTION_ID", "type": "string"},
                             {"name": "FAMILY", "type": "string", "categorical": True},
                             {"name": "REPEAT_FREQUENCY", "type": ["null", "int"]},
                             {"name": "EXPIRATION_TIMESTAMP", "type": ["null", "long"]}], "version": "1.0"}
action_interactions_schema = {
    "type": "record", "name": "Action_Interactions", "namespace": "com.amazonaws.personalize.schema",
    "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ACTION_ID", "type": "string"},
               {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"}], "version": "1.0"}


def csv_bytes(header: list[str], rows: list[list]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def test_next_best_action_flow(tmp_path, aws_endpoint_url, aws_region):
    rng = random.Random(9)
    s3 = boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region)
    bucket = f"lp-nba-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    with LocalPersonalizeServer(tmp_path / "data", aws_endpoint_url) as server:
        personalize, personalize_events, personalize_runtime = personalize_clients(server.url)
        recipe = personalize.describe_recipe(recipeArn="arn:aws:personalize:::recipe/aws-next-best-action")
        assert recipe["recipe"]["recipeType"] == "PERSONALIZED_ACTIONS"

        group = personalize.create_dataset_group(name="nba")["datasetGroupArn"]
        wait_active(lambda: personalize.describe_dataset_group(datasetGroupArn=group), "datasetGroup")
        datasets = {}
        for kind, schema in (("ACTIONS", actions_schema), ("ACTION_INTERACTIONS", action_interactions_schema)):
            schema_arn = personalize.create_schema(name=f"nba-{kind.lower()}", schema=json.dumps(schema))["schemaArn"]
            datasets[kind] = personalize.create_dataset(name=f"nba-{kind.lower()}", schemaArn=schema_arn,
                                                        datasetGroupArn=group, datasetType=kind)["datasetArn"]

        actions = [[a, family, 1 if a == DAILY else "", NOW - 3600 if a == EXPIRED else ""]
                   for family, members in FAMILIES.items() for a in members]
        taken = []
        for user in range(200):
            favourites = rng.sample(FAMILIES[user % 2], 2)  # each user takes two actions of their kind
            for n in range(8):
                taken.append([f"u{user}", favourites[n % 2], NOW - 30 * 86_400 + user * 60 + n, "TAKEN"])
            taken.append([f"u{user}", rng.choice(FAMILIES[1 - user % 2]), NOW - 86_400, "NOT_TAKEN"])
        for kind, header, rows in (("ACTIONS", ["ACTION_ID", "FAMILY", "REPEAT_FREQUENCY", "EXPIRATION_TIMESTAMP"],
                                    actions),
                                   ("ACTION_INTERACTIONS", ["USER_ID", "ACTION_ID", "TIMESTAMP", "EVENT_TYPE"], taken)):
            s3.put_object(Bucket=bucket, Key=f"{kind}.csv", Body=csv_bytes(header, rows))
            job = personalize.create_dataset_import_job(
                jobName=f"nba-{kind.lower()}-import", datasetArn=datasets[kind], roleArn=ROLE,
                dataSource={"dataLocation": f"s3://{bucket}/{kind}.csv"})["datasetImportJobArn"]
            wait_active(lambda arn=job: personalize.describe_dataset_import_job(datasetImportJobArn=arn),
                        "datasetImportJob")

        # An Action interactions dataset carries its own trackingId (DescribeDataset).
        tracking_id = personalize.describe_dataset(datasetArn=datasets["ACTION_INTERACTIONS"])["dataset"]["trackingId"]
        personalize_events.put_actions(datasetArn=datasets["ACTIONS"], actions=[
            {"actionId": "a-new", "properties": json.dumps({"family": "0"})}])
        # u0 (family 0) took the once-only action and, two days ago, the daily one.
        personalize_events.put_action_interactions(trackingId=tracking_id, actionInteractions=[
            {"userId": "u0", "sessionId": "s0", "actionId": ONCE_ONLY, "eventType": "TAKEN", "timestamp": NOW - 60},
            {"userId": "u0", "sessionId": "s0", "actionId": DAILY, "eventType": "TAKEN",
             "timestamp": NOW - 2 * 86_400}])

        solution = personalize.create_solution(name="nba-solution", datasetGroupArn=group,
                                               recipeArn="arn:aws:personalize:::recipe/aws-next-best-action")
        version = personalize.create_solution_version(solutionArn=solution["solutionArn"])["solutionVersionArn"]
        wait_active(lambda: personalize.describe_solution_version(solutionVersionArn=version), "solutionVersion")
        campaign = personalize.create_campaign(name="nba-campaign", solutionVersionArn=version)["campaignArn"]
        wait_active(lambda: personalize.describe_campaign(campaignArn=campaign), "campaign")

        in_family = []
        for user in range(2, 42):
            answer = personalize_runtime.get_action_recommendations(campaignArn=campaign, userId=f"u{user}",
                                                                    numResults=3)
            listed = [action["actionId"] for action in answer["actionList"]]
            scores = [action["score"] for action in answer["actionList"]]
            assert len(listed) == 3 and scores == sorted(scores, reverse=True) and answer["recommendationId"]
            assert EXPIRED not in listed
            in_family.append(sum(a in FAMILIES[user % 2] for a in listed) / 3)
        assert sum(in_family) / len(in_family) >= 0.8  # the users' own kind of action, not the other

        for_u0 = [a["actionId"] for a in personalize_runtime.get_action_recommendations(
            campaignArn=campaign, userId="u0", numResults=12)["actionList"]]
        assert ONCE_ONLY not in for_u0 and EXPIRED not in for_u0
        default = personalize_runtime.get_action_recommendations(campaignArn=campaign, userId="u1")["actionList"]
        assert len(default) == 5  # numResults defaults to 5
        with pytest.raises(personalize_runtime.exceptions.InvalidInputException):
            personalize_runtime.get_recommendations(campaignArn=campaign, userId="u1")
