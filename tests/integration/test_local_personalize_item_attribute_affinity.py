"""aws-item-attribute-affinity through real boto3 against a running local_personalize (issue 9 item 3).

describe_recipe → create_solution / create_solution_version with the recipe → create_batch_segment_job on a
JSON-lines file of `itemAttributes` queries, as the developer guide documents them (prepare-input-data-user-
segment.html), output lines `{"itemAttributes": …, "output": {"recommendedUsers": […]}}`
(batch-segment-job-output-examples.html).
"""

from __future__ import annotations

import json
import time

import boto3
import numpy as np
import pytest

from synthetic_shop import generate
from tests.fixtures.local_personalize import LocalPersonalizeServer, personalize_clients
from tests.integration.workers_support import ROLE, train_shop, train_version, wait_active

pytestmark = pytest.mark.integration
RECIPE_ARN = "arn:aws:personalize:::recipe/aws-item-attribute-affinity"


def test_item_attribute_segments(tmp_path, aws_endpoint_url, aws_region):
    s3 = boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region)
    bucket = f"lp-attribute-affinity-{int(time.time() * 1000)}"
    s3.create_bucket(Bucket=bucket)
    with LocalPersonalizeServer(tmp_path / "data", aws_endpoint_url) as server:
        personalize, _, _ = personalize_clients(server.url)
        recipe = personalize.describe_recipe(recipeArn=RECIPE_ARN)["recipe"]
        assert recipe["recipeType"] == "USER_SEGMENTATION" and recipe["name"] == "aws-item-attribute-affinity"
        trained = train_shop(server.url, s3, bucket, name="attributes", num_users=300, num_items=120)
        # The same synthetic shop train_shop imported, to know each user's genres.
        shop = generate(num_users=300, num_items=120, num_interactions=300 * 15, num_genres=5, seed=5)
        version = train_version(server.url, trained.dataset_group_arn, "attributes-affinity",
                                "aws-item-attribute-affinity")

        queries = [f'ITEMS.GENRE = "{shop.genre_name(genre)}"' for genre in range(3)]
        queries.append('ITEMS.GENRE = "genre0" AND ITEMS.GENRE = "genre1"')  # no item has both: empty segment
        queries.append("GENRE is genre0")  # not a query: an error line, the others go through
        s3.put_object(Bucket=bucket, Key="segments/in/attributes.json",
                      Body="\n".join(json.dumps({"itemAttributes": query}) for query in queries).encode())
        job = personalize.create_batch_segment_job(
            jobName="attribute-segments", solutionVersionArn=version, numResults=30, roleArn=ROLE,
            jobInput={"s3DataSource": {"path": f"s3://{bucket}/segments/in/attributes.json"}},
            jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/segments/out/"}})["batchSegmentJobArn"]
        wait_active(lambda: personalize.describe_batch_segment_job(batchSegmentJobArn=job), "batchSegmentJob")
        body = s3.get_object(Bucket=bucket, Key="segments/out/attributes.json.out")["Body"].read().decode()
        records = [json.loads(line) for line in body.splitlines()]

        assert [r.get("itemAttributes") for r in records[:4]] == queries[:4]
        base = []
        for genre, record in enumerate(records[:3]):
            users = [int(user[1:]) for user in record["output"]["recommendedUsers"]]
            assert len(users) == 30 and record["error"] is None
            fans = (shop.user_genre[users] == genre) | (shop.user_second_genre[users] == genre)
            base.append(np.mean((shop.user_genre == genre) | (shop.user_second_genre == genre)))
            assert np.mean(fans) >= base[-1] + 0.2  # the segment is the genre's audience, not a random draw
        assert records[3]["output"] == {"recommendedUsers": []}
        assert records[4]["input"] == {"itemAttributes": queries[4]} and "ITEMS." in records[4]["error"]

        # More than 10 queries in a file fails the job (item-attribute-affinity-recipe.html).
        s3.put_object(Bucket=bucket, Key="segments/many/attributes.json",
                      Body="\n".join(json.dumps({"itemAttributes": queries[0]}) for _ in range(11)).encode())
        too_many = personalize.create_batch_segment_job(
            jobName="attribute-segments-11", solutionVersionArn=version, numResults=5, roleArn=ROLE,
            jobInput={"s3DataSource": {"path": f"s3://{bucket}/segments/many/attributes.json"}},
            jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/segments/many-out/"}})["batchSegmentJobArn"]
        deadline = time.monotonic() + 60
        while (status := personalize.describe_batch_segment_job(batchSegmentJobArn=too_many)["batchSegmentJob"])[
                "status"] not in ("ACTIVE", "CREATE FAILED") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status["status"] == "CREATE FAILED" and "more than 10 queries" in status["failureReason"]
