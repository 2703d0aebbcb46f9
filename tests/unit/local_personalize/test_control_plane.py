"""Control-plane operations against a real SQLite store, without HTTP (docs/reference/personalize-api.md#control-plane)."""

from __future__ import annotations

import orjson
import pytest

from local_personalize.control import OPERATIONS, ControlContext
from local_personalize.errors import (
    InvalidInput, InvalidNextToken, ResourceAlreadyExists, ResourceInUse, ResourceNotFound)
from local_personalize.settings import Settings
from local_personalize.store import Store
from synthetic_shop import INTERACTIONS_SCHEMA, ITEMS_SCHEMA


@pytest.fixture
def call(tmp_path):
    settings = Settings(data_dir=tmp_path)
    store = Store(settings.db_path)
    deferred = []

    def run(operation, **body):
        context = ControlContext(store, settings)
        answer = OPERATIONS[operation](context, body)
        deferred.extend(context.deferred)
        return answer

    run.deferred = deferred
    run.store = store
    yield run
    store.close()


def make_group(call, name="shop"):
    group = call("CreateDatasetGroup", name=name)["datasetGroupArn"]
    schema = call("CreateSchema", name=f"{name}-interactions", schema=orjson.dumps(INTERACTIONS_SCHEMA).decode())
    dataset = call("CreateDataset", name=f"{name}-i", schemaArn=schema["schemaArn"], datasetGroupArn=group,
                   datasetType="Interactions")["datasetArn"]
    return group, schema["schemaArn"], dataset


def test_arns_statuses_and_describe_documents(call):
    group, schema, dataset = make_group(call)
    assert group == "arn:aws:personalize:us-east-1:000000000000:dataset-group/shop"
    assert dataset == "arn:aws:personalize:us-east-1:000000000000:dataset/shop/INTERACTIONS"
    described = call("DescribeDataset", datasetArn=dataset)["dataset"]
    assert described["status"] == "ACTIVE"
    assert described["datasetType"] == "INTERACTIONS"
    assert not any(key.startswith("_") for key in described)
    assert "status" not in call("DescribeSchema", schemaArn=schema)["schema"]


def test_provisioning_delay_reports_create_pending(tmp_path):
    settings = Settings(data_dir=tmp_path, provisioning_delay_secs=60)
    store = Store(settings.db_path)
    arn = OPERATIONS["CreateDatasetGroup"](ControlContext(store, settings), {"name": "slow"})["datasetGroupArn"]
    group = OPERATIONS["DescribeDatasetGroup"](ControlContext(store, settings), {"datasetGroupArn": arn})
    assert group["datasetGroup"]["status"] == "CREATE PENDING"
    with pytest.raises(ResourceInUse):
        OPERATIONS["CreateEventTracker"](ControlContext(store, settings), {"name": "t", "datasetGroupArn": arn})


def test_names_clash_and_unknown_arns(call):
    make_group(call)
    with pytest.raises(ResourceAlreadyExists):
        call("CreateDatasetGroup", name="shop")
    with pytest.raises(ResourceNotFound):
        call("DescribeDatasetGroup", datasetGroupArn="arn:aws:personalize:us-east-1:000000000000:dataset-group/x")
    with pytest.raises(ResourceNotFound):
        call("CreateDataset", name="d", schemaArn="arn:aws:personalize:us-east-1:000000000000:schema/none",
             datasetGroupArn="arn:aws:personalize:us-east-1:000000000000:dataset-group/shop", datasetType="Items")


def test_schema_must_fit_the_dataset_type(call):
    group, _, _ = make_group(call)
    items = call("CreateSchema", name="items", schema=orjson.dumps(ITEMS_SCHEMA).decode())["schemaArn"]
    with pytest.raises(InvalidInput, match="record name is Users"):
        call("CreateDataset", name="u", schemaArn=items, datasetGroupArn=group, datasetType="Users")
    with pytest.raises(InvalidInput, match="datasetType"):
        call("CreateDataset", name="u", schemaArn=items, datasetGroupArn=group, datasetType="Things")


def test_one_event_tracker_per_group(call):
    group, _, _ = make_group(call)
    tracker = call("CreateEventTracker", name="t1", datasetGroupArn=group)
    assert len(tracker["trackingId"]) == 36
    with pytest.raises(ResourceAlreadyExists):
        call("CreateEventTracker", name="t2", datasetGroupArn=group)


def test_delete_refuses_while_dependants_remain(call):
    group, schema, dataset = make_group(call)
    with pytest.raises(ResourceInUse):
        call("DeleteDatasetGroup", datasetGroupArn=group)
    with pytest.raises(ResourceInUse):
        call("DeleteSchema", schemaArn=schema)
    call("DeleteDataset", datasetArn=dataset)
    call("DeleteDatasetGroup", datasetGroupArn=group)
    call("DeleteSchema", schemaArn=schema)
    assert call("ListDatasetGroups")["datasetGroups"] == []


def test_list_pagination_walks_every_page_once(call):
    for n in range(7):
        call("CreateDatasetGroup", name=f"g{n}")
    names, token = [], None
    while True:
        page = call("ListDatasetGroups", maxResults=3, **({"nextToken": token} if token else {}))
        names += [group["name"] for group in page["datasetGroups"]]
        token = page.get("nextToken")
        if token is None:
            break
    assert names == [f"g{n}" for n in range(7)]
    with pytest.raises(InvalidNextToken):
        call("ListDatasetGroups", nextToken="garbage")


def test_import_job_is_deferred_and_listed(call):
    _, _, dataset = make_group(call)
    arn = call("CreateDatasetImportJob", jobName="load", datasetArn=dataset,
               dataSource={"dataLocation": "s3://bucket/interactions.csv"})["datasetImportJobArn"]
    assert call.deferred == [("import", arn)]
    job = call("DescribeDatasetImportJob", datasetImportJobArn=arn)["datasetImportJob"]
    assert (job["status"], job["importMode"]) == ("CREATE PENDING", "FULL")
    assert [j["jobName"] for j in call("ListDatasetImportJobs", datasetArn=dataset)["datasetImportJobs"]] == ["load"]
    with pytest.raises(ResourceInUse):
        call("DeleteDataset", datasetArn=dataset)


def test_solutions_need_known_recipes(call):
    group, _, _ = make_group(call)
    with pytest.raises(ResourceNotFound):
        call("CreateSolution", name="s", datasetGroupArn=group, recipeArn="arn:aws:personalize:::recipe/aws-nothing")
    with pytest.raises(InvalidInput, match="recipeArn is required"):
        call("CreateSolution", name="s", datasetGroupArn=group)


def test_tags_are_set_listed_and_removed(call):
    group, _, _ = make_group(call)
    call("TagResource", resourceArn=group, tags=[{"tagKey": "team", "tagValue": "growth"},
                                                 {"tagKey": "env", "tagValue": "dev"}])
    call("UntagResource", resourceArn=group, tagKeys=["env"])
    assert call("ListTagsForResource", resourceArn=group)["tags"] == [{"tagKey": "team", "tagValue": "growth"}]
    with pytest.raises(ResourceNotFound):
        call("ListTagsForResource", resourceArn=group + "-missing")


def test_put_events_takes_the_item_from_properties_as_the_getting_started_notebook_sends_it(call):
    from local_personalize.ingest import put_events

    group, _, dataset = make_group(call)
    tracking_id = call("CreateEventTracker", name="t", datasetGroupArn=group)["trackingId"]
    body = {"trackingId": tracking_id, "userId": "u1", "sessionId": "s1",
            "eventList": [{"eventType": "EVENT_TYPE", "sentAt": 1_700_000_000, "properties": '{"itemId": "270"}'},
                          {"eventType": "click", "itemId": "i9", "sentAt": 1_700_000_001,
                           "properties": '{"itemId": "ignored"}'}]}
    ingested = put_events(call.store, body)
    assert [(event[1], event[3]) for event in ingested.interactions] == [("270", "EVENT_TYPE"), ("i9", "click")]
    with pytest.raises(InvalidInput, match="itemId is required at 'eventList.1.member'"):
        put_events(call.store, {**body, "eventList": [{"eventType": "click", "sentAt": 1_700_000_002}]})


def test_update_dataset_replaces_the_schema_only_with_one_that_keeps_every_field(call):
    from local_personalize.ingest import dataset_schema

    group, schema, dataset = make_group(call)
    wider = {**INTERACTIONS_SCHEMA, "fields": [*INTERACTIONS_SCHEMA["fields"],
                                                {"name": "DEVICE", "type": ["null", "string"], "categorical": True}]}
    wider_arn = call("CreateSchema", name="wider", schema=orjson.dumps(wider).decode())["schemaArn"]
    assert call("UpdateDataset", datasetArn=dataset, schemaArn=wider_arn) == {"datasetArn": dataset}
    described = call("DescribeDataset", datasetArn=dataset)["dataset"]
    assert described["schemaArn"] == wider_arn
    assert described["latestDatasetUpdate"]["schemaArn"] == wider_arn
    assert "DEVICE" in dataset_schema(call.store, call.store.get_resource(dataset)).names
    narrower = {**INTERACTIONS_SCHEMA, "fields": INTERACTIONS_SCHEMA["fields"][:3]}  # without EVENT_TYPE
    narrower_arn = call("CreateSchema", name="narrower", schema=orjson.dumps(narrower).decode())["schemaArn"]
    with pytest.raises(InvalidInput, match="must keep field EVENT_TYPE"):
        call("UpdateDataset", datasetArn=dataset, schemaArn=narrower_arn)
    items = call("CreateSchema", name="items", schema=orjson.dumps(ITEMS_SCHEMA).decode())["schemaArn"]
    with pytest.raises(InvalidInput):
        call("UpdateDataset", datasetArn=dataset, schemaArn=items)
    assert call("DescribeDataset", datasetArn=dataset)["dataset"]["schemaArn"] == wider_arn


def test_update_solution_sets_auto_training_and_events_for_later_versions(call):
    group, _, _ = make_group(call)
    solution = call("CreateSolution", name="s", datasetGroupArn=group,
                    recipeArn="arn:aws:personalize:::recipe/aws-user-personalization")["solutionArn"]
    events = {"eventParametersList": [{"eventType": "purchase", "weight": 1.0}]}
    call("UpdateSolution", solutionArn=solution, performAutoTraining=True, solutionUpdateConfig={
        "autoTrainingConfig": {"schedulingExpression": "rate(3 days)"}, "eventsConfig": events})
    described = call("DescribeSolution", solutionArn=solution)["solution"]
    assert described["solutionConfig"]["autoTrainingConfig"] == {"schedulingExpression": "rate(3 days)"}
    assert described["solutionConfig"]["eventsConfig"] == events
    assert described["latestSolutionUpdate"]["status"] == "ACTIVE"
    call("UpdateSolution", solutionArn=solution, performAutoTraining=False)
    assert call("DescribeSolution", solutionArn=solution)["solution"]["performAutoTraining"] is False
    with pytest.raises(ResourceNotFound):
        call("UpdateSolution", solutionArn=solution + "-gone", performAutoTraining=True)


def test_describe_algorithm_and_feature_transformation_answer_what_describe_recipe_names(call):
    recipe = call("DescribeRecipe", recipeArn="arn:aws:personalize:::recipe/aws-sims")["recipe"]
    algorithm = call("DescribeAlgorithm", algorithmArn=recipe["algorithmArn"])["algorithm"]
    assert algorithm["algorithmArn"] == recipe["algorithmArn"] and algorithm["name"] == "aws-sims"
    transformation = call("DescribeFeatureTransformation",
                          featureTransformationArn=recipe["featureTransformationArn"])["featureTransformation"]
    assert transformation["status"] == "ACTIVE"
    with pytest.raises(ResourceNotFound):
        call("DescribeAlgorithm", algorithmArn="arn:aws:personalize:::algorithm/aws-nothing")
    with pytest.raises(ResourceNotFound):
        call("DescribeFeatureTransformation", featureTransformationArn="arn:aws:personalize:::feature-transformation/x")
