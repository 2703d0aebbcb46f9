"""AWS's aws-similar-items sample as a boto3 call sequence against local_personalize.

Follows aws-samples/amazon-personalize-samples next_steps/core_use_cases/related_items/
personalize_aws_similar_items_example.ipynb: one custom dataset group with interactions (EVENT_VALUE,
EVENT_TYPE) and items carrying BRAND (categorical), PRICE and a textual DESCRIPTION; an aws-sims and an
aws-similar-items solution side by side, a campaign on each, related items per item. Same calls and
arguments except endpoint_url, the role ARN and the S3 location; the data (the sample uses Amazon's
Prime Pantry reviews) is a synthetic shop whose descriptions name each item's genre, plus new items
nobody interacted with yet.
"""

from __future__ import annotations

import io
import json
import time

import boto3
import numpy as np
import pytest

from synthetic_shop import generate
from tests.fixtures.local_personalize import LocalPersonalizeServer, personalize_clients

pytestmark = pytest.mark.integration
ROLE = "arn:aws:iam::000000000000:role/PersonalizeRolePantry"
GENRE_WORDS = ("crunchy salty snack chips", "organic herbal tea leaves", "dish soap kitchen cleaning",
               "dark roast coffee beans", "pasta sauce tomato basil")
NEW_ITEMS = 10


def wait_active(describe, key: str) -> dict:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        resource = describe()[key]
        if resource["status"] in ("ACTIVE", "CREATE FAILED"):
            assert resource["status"] == "ACTIVE", resource.get("failureReason")
            return resource
        time.sleep(0.2)
    raise AssertionError(f"{key} not ACTIVE in time")


@pytest.fixture(scope="module")
def shop():
    return generate(num_users=300, num_items=150, num_interactions=6000, num_genres=5, seed=9)


def csv_files(shop) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(2)
    interactions = io.StringIO()
    interactions.write("USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE,EVENT_TYPE\n")
    for user, item, ts in zip(shop.users.tolist(), shop.items.tolist(), shop.timestamps.tolist()):
        interactions.write(f"u{user},i{item},{ts},{rng.integers(4, 6)},reviewed\n")
    items = io.StringIO()
    items.write("ITEM_ID,BRAND,PRICE,DESCRIPTION\n")
    genres = shop.item_genre.tolist() + [k % shop.num_genres for k in range(NEW_ITEMS)]
    for position, genre in enumerate(genres):
        item_id = f"i{position}" if position < shop.num_items else f"new{position - shop.num_items}"
        # Brands are spread over genres at random, and new items have none yet: for them only the
        # description tells what they are.
        brand = f"brand{rng.integers(0, 20)}" if position < shop.num_items else ""
        items.write(f'{item_id},{brand},{rng.uniform(1, 30):.2f},'
                    f'"Pantry item {position}: {GENRE_WORDS[genre]}, family size"\n')
    return interactions.getvalue().encode(), items.getvalue().encode()


@pytest.fixture(scope="module")
def sample(tmp_path_factory, aws_endpoint_url, aws_region, shop):
    """The notebook's calls, in its order."""
    bucket_name = f"lp-similar-items-{int(time.time() * 1000)}"
    s3 = boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region)
    s3.create_bucket(Bucket=bucket_name)
    interactions_filename, items_filename = "interactions.csv", "items-metadata.csv"
    interactions_body, items_body = csv_files(shop)
    s3.put_object(Bucket=bucket_name, Key=interactions_filename, Body=interactions_body)
    s3.put_object(Bucket=bucket_name, Key=items_filename, Body=items_body)
    role_arn = ROLE
    with LocalPersonalizeServer(tmp_path_factory.mktemp("lp-similar") / "data", aws_endpoint_url) as server:
        personalize, _events, personalize_runtime = personalize_clients(server.url)
        create_dataset_group_response = personalize.create_dataset_group(name="amazon-pantry-aws-similar-items")
        dataset_group = create_dataset_group_response['datasetGroupArn']
        dataset_group_arn = dataset_group
        wait_active(lambda: personalize.describe_dataset_group(datasetGroupArn=dataset_group_arn), "datasetGroup")
        interactions_schema = {
            "type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
            "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                       {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_VALUE", "type": "float"},
                       {"name": "EVENT_TYPE", "type": "string"}], "version": "1.0"}
        interaction_schema_arn = personalize.create_schema(
            name="amazon-pantry-interactions-1", schema=json.dumps(interactions_schema))['schemaArn']
        interactions_dataset = personalize.create_dataset(
            name="amazon-pantry-ints", datasetType="INTERACTIONS", datasetGroupArn=dataset_group,
            schemaArn=interaction_schema_arn)['datasetArn']
        dataset_import_job = personalize.create_dataset_import_job(
            jobName="amazon-pantry-interactions-import", datasetArn=interactions_dataset,
            dataSource={"dataLocation": "s3://{}/{}".format(bucket_name, interactions_filename)},
            roleArn=role_arn)['datasetImportJobArn']
        item_schema = {
            "type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema",
            "fields": [{"name": "ITEM_ID", "type": "string"},
                       {"name": "BRAND", "type": ["null", "string"], "categorical": True},
                       {"name": "PRICE", "type": ["null", "float"]},
                       {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True}], "version": "1.0"}
        item_schema_arn = personalize.create_schema(
            name="amazon-pantry-items-schema", schema=json.dumps(item_schema))['schemaArn']
        items_dataset_arn = personalize.create_dataset(
            name="amazon-pantry-items", datasetType="ITEMS", datasetGroupArn=dataset_group_arn,
            schemaArn=item_schema_arn)['datasetArn']
        dataset_import_job_items_arn = personalize.create_dataset_import_job(
            jobName="amazon-pantry-items-import-job", datasetArn=items_dataset_arn,
            dataSource={"dataLocation": "s3://{}/{}".format(bucket_name, items_filename)},
            roleArn=role_arn)['datasetImportJobArn']
        for import_arn in (dataset_import_job, dataset_import_job_items_arn):
            wait_active(lambda arn=import_arn: personalize.describe_dataset_import_job(datasetImportJobArn=arn),
                        "datasetImportJob")
        recipes = personalize.list_recipes()["recipes"]
        sims_recipe_arn = "arn:aws:personalize:::recipe/aws-sims"
        similar_items_recipe_arn = "arn:aws:personalize:::recipe/aws-similar-items"
        versions = {}
        for label, recipe_arn, name in (
                ("sims", sims_recipe_arn, "amazon-pantry-sims-solution-example"),
                ("aws-similar-items", similar_items_recipe_arn, "amazon-pantry-aws-similar-items-solution-example")):
            solution_arn = personalize.create_solution(name=name, datasetGroupArn=dataset_group_arn,
                                                       recipeArn=recipe_arn)['solutionArn']
            wait_active(lambda arn=solution_arn: personalize.describe_solution(solutionArn=arn), "solution")
            versions[label] = personalize.create_solution_version(solutionArn=solution_arn)['solutionVersionArn']
        training_hours = {}
        for label, version_arn in versions.items():
            described = wait_active(lambda arn=version_arn: personalize.describe_solution_version(
                solutionVersionArn=arn), "solutionVersion")
            training_hours[label] = described['trainingHours']
        campaigns = {}
        for label, version_arn in versions.items():
            campaigns[label] = personalize.create_campaign(
                name="personalize-demo-" + label + "example", solutionVersionArn=version_arn,
                minProvisionedTPS=1)['campaignArn']
            wait_active(lambda arn=campaigns[label]: personalize.describe_campaign(campaignArn=arn), "campaign")

        def related(label: str, item_id: str) -> list[str]:
            response = personalize_runtime.get_recommendations(campaignArn=campaigns[label], itemId=item_id,
                                                               numResults=10)
            return [each['itemId'] for each in response['itemList']]

        yield {"recipes": recipes, "training_hours": training_hours, "related": related}
        for arn in campaigns.values():
            personalize.delete_campaign(campaignArn=arn)


def genre_of(shop, item_id: str) -> int:
    if item_id.startswith("new"):
        return int(item_id[3:]) % shop.num_genres
    return int(shop.item_genre[int(item_id[1:])])


def test_similar_items_sample_runs_and_lists_the_recipe(sample):
    assert "arn:aws:personalize:::recipe/aws-similar-items" in {r["recipeArn"] for r in sample["recipes"]}
    assert all(hours >= 0 for hours in sample["training_hours"].values())


def test_new_items_get_neighbours_from_their_description(sample, shop):
    for k in range(NEW_ITEMS):
        item_id = f"new{k}"
        similar = sample["related"]("aws-similar-items", item_id)
        assert len(similar) == 10 and item_id not in similar
        assert np.mean([genre_of(shop, other) == genre_of(shop, item_id) for other in similar]) >= 0.9
    # SIMS knows nothing of a new item: it answers with popular items of every genre.
    fallback = sample["related"]("sims", "new0")
    assert np.mean([genre_of(shop, other) == genre_of(shop, "new0") for other in fallback]) < 0.9


def test_known_items_keep_their_co_interaction_neighbours(sample, shop):
    popular = int(np.bincount(shop.items).argmax())
    similar = sample["related"]("aws-similar-items", f"i{popular}")
    sims = sample["related"]("sims", f"i{popular}")
    assert len(set(similar) & set(sims)) >= 5
    assert np.mean([genre_of(shop, other) == shop.item_genre[popular] for other in similar]) >= 0.8
