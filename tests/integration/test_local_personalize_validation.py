"""Every server-side validation rule, sent by boto3 with client-side validation off (issue 3, docs/reference/personalize-api.md#client-side-validation-in-botocore, #field-constraints).

botocore checks only required members, types and `min`; with `parameter_validation=False` it checks
nothing, so each bad request below reaches local_personalize, which must answer with the right
exception class.
"""

from __future__ import annotations

import json
import uuid

import botocore.exceptions
import pytest

from synthetic_shop import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, USERS_SCHEMA
from tests.fixtures.local_personalize import aio_personalize_client, personalize_client

pytestmark = pytest.mark.integration
ACCOUNT_ARN = "arn:aws:personalize:us-east-1:000000000000"


@pytest.fixture(scope="module")
def clients(local_personalize_url):
    return {service: personalize_client(local_personalize_url, service, validate=False)
            for service in ("personalize", "personalize-events", "personalize-runtime")}


@pytest.fixture(scope="module")
def group(clients):
    control = clients["personalize"]
    name = f"validation-{uuid.uuid4().hex[:8]}"
    arn = control.create_dataset_group(name=name)["datasetGroupArn"]
    datasets = {}
    for kind, schema in (("Interactions", INTERACTIONS_SCHEMA), ("Items", ITEMS_SCHEMA), ("Users", USERS_SCHEMA)):
        schema_arn = control.create_schema(name=f"{name}-{kind}", schema=json.dumps(schema))["schemaArn"]
        datasets[kind] = control.create_dataset(name=f"{name}-{kind}", schemaArn=schema_arn, datasetGroupArn=arn,
                                                datasetType=kind)["datasetArn"]
    tracker = control.create_event_tracker(name=f"{name}-tracker", datasetGroupArn=arn)
    return {"arn": arn, "name": name, "datasets": datasets, "tracking_id": tracker["trackingId"]}


def event(**overrides):
    return {"eventType": "click", "itemId": "i1", "sentAt": 1_700_000_000, **overrides}


def put_events(group, **overrides):
    return {"trackingId": group["tracking_id"], "userId": "u1", "sessionId": "s1", "eventList": [event()],
            **overrides}


def expect(client, operation: str, kwargs: dict, code: str, status: int | None = None) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        getattr(client, operation)(**kwargs)
    error = raised.value
    assert error.response["Error"]["Code"] == code, error.response["Error"]
    # The typed class, not just the code: what callers catch.
    assert isinstance(error, getattr(client.exceptions, code, botocore.exceptions.ClientError))
    if status is not None:
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert error.response["ResponseMetadata"]["RequestId"]
    return error.response["Error"]["Message"]


# --- personalize-events: PutEvents (docs/reference/personalize-api.md#putevents, #field-constraints)
# ------------------------------------------------------

PUT_EVENTS_CASES = {
    "eleven events": lambda g: put_events(g, eventList=[event()] * 11),
    "no events": lambda g: put_events(g, eventList=[]),
    "26 impressions": lambda g: put_events(g, eventList=[event(impression=[f"i{n}" for n in range(26)])]),
    "empty impression id": lambda g: put_events(g, eventList=[event(impression=[""])]),
    "recommendationId of 41": lambda g: put_events(g, eventList=[event(recommendationId="R" * 41)]),
    "userId of 257": lambda g: put_events(g, userId="u" * 257),
    "sessionId missing": lambda g: {k: v for k, v in put_events(g).items() if k != "sessionId"},
    "eventType of 257": lambda g: put_events(g, eventList=[event(eventType="e" * 257)]),
    "itemId of 257": lambda g: put_events(g, eventList=[event(itemId="i" * 257)]),
    "properties of 1025": lambda g: put_events(g, eventList=[event(properties="{" + " " * 1023 + "}")]),
    "properties not JSON": lambda g: put_events(g, eventList=[event(properties="{numberOfRatings: 12")]),
    "properties a JSON list": lambda g: put_events(g, eventList=[event(properties='["a"]')]),
    "properties with userId": lambda g: put_events(g, eventList=[event(properties='{"userId": "u2"}')]),
    "properties with SessionID": lambda g: put_events(g, eventList=[event(properties='{"SessionID": "s"}')]),
    "properties with eventType": lambda g: put_events(g, eventList=[event(properties='{"eventType": "x"}')]),
    "properties with timestamp": lambda g: put_events(g, eventList=[event(properties='{"timestamp": 1}')]),
    "properties with recommendationId": lambda g: put_events(
        g, eventList=[event(properties='{"recommendationId": "r"}')]),
    "properties with impression": lambda g: put_events(g, eventList=[event(properties='{"impression": "a"}')]),
    "properties key not in schema": lambda g: put_events(g, eventList=[event(properties='{"colour": "red"}')]),
    "attribution source not printable": lambda g: put_events(
        g, eventList=[event(metricAttribution={"eventAttributionSource": "   "})]),
    "attribution source of 1025": lambda g: put_events(
        g, eventList=[event(metricAttribution={"eventAttributionSource": "a" * 1025})]),
    "no itemId for an Interactions dataset": lambda g: put_events(
        g, eventList=[{"eventType": "click", "sentAt": 1_700_000_000}]),
}


@pytest.mark.parametrize("case", PUT_EVENTS_CASES)
def test_put_events_rules(clients, group, case):
    expect(clients["personalize-events"], "put_events", PUT_EVENTS_CASES[case](group), "InvalidInputException", 400)


def test_put_events_reserved_key_message_names_the_key(clients, group):
    message = expect(clients["personalize-events"], "put_events",
                     PUT_EVENTS_CASES["properties with userId"](group), "InvalidInputException")
    assert "userId" in message


def test_put_events_unknown_tracking_id(clients, group):
    expect(clients["personalize-events"], "put_events", put_events(group, trackingId=str(uuid.uuid4())),
           "ResourceNotFoundException", 404)


def test_a_good_put_events_is_accepted(clients, group):
    answer = clients["personalize-events"].put_events(**put_events(group, eventList=[
        event(impression=["i1", "i2"], recommendationId="RID-" + str(uuid.uuid4()), eventValue=1.5)]))
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200


# --- personalize-events: PutItems / PutUsers
# (docs/reference/personalize-api.md#putitems-and-putusers, #field-constraints)
# --------------------------------------------

def records(group, kind, key, **overrides):
    return {"datasetArn": group["datasets"][kind], f"{key}s": [{f"{key}Id": "r1"}], **overrides}


PUT_RECORD_CASES = {
    "eleven items": ("put_items", lambda g: records(g, "Items", "item", items=[{"itemId": f"i{n}"} for n in range(11)])),
    "no items": ("put_items", lambda g: records(g, "Items", "item", items=[])),
    "item properties of 32001": ("put_items", lambda g: records(
        g, "Items", "item", items=[{"itemId": "i1", "properties": '{"genre": "' + "x" * 32000 + '"}'}])),
    "item properties not an object": ("put_items", lambda g: records(
        g, "Items", "item", items=[{"itemId": "i1", "properties": '"genre"'}])),
    "item properties not JSON": ("put_items", lambda g: records(
        g, "Items", "item", items=[{"itemId": "i1", "properties": "genre=x"}])),
    "item property not in schema": ("put_items", lambda g: records(
        g, "Items", "item", items=[{"itemId": "i1", "properties": '{"price": 3}'}])),
    "item itemId of 257": ("put_items", lambda g: records(g, "Items", "item", items=[{"itemId": "i" * 257}])),
    "item datasetArn pattern": ("put_items", lambda g: records(g, "Items", "item", datasetArn="dataset/items")),
    "items into the Users dataset": ("put_items", lambda g: records(
        g, "Items", "item", datasetArn=g["datasets"]["Users"])),
    "eleven users": ("put_users", lambda g: records(g, "Users", "user", users=[{"userId": f"u{n}"} for n in range(11)])),
    "user properties of 24001": ("put_users", lambda g: records(
        g, "Users", "user", users=[{"userId": "u1", "properties": '{"segment": "' + "x" * 24000 + '"}'}])),
    "user properties not an object": ("put_users", lambda g: records(
        g, "Users", "user", users=[{"userId": "u1", "properties": "[1]"}])),
    "user userId of 257": ("put_users", lambda g: records(g, "Users", "user", users=[{"userId": "u" * 257}])),
}


@pytest.mark.parametrize("case", PUT_RECORD_CASES)
def test_put_records_rules(clients, group, case):
    operation, build = PUT_RECORD_CASES[case]
    expect(clients["personalize-events"], operation, build(group), "InvalidInputException", 400)


@pytest.mark.parametrize("operation, kind, key", [("put_items", "Items", "item"), ("put_users", "Users", "user")])
def test_put_records_unknown_dataset(clients, group, operation, kind, key):
    unknown = f"{ACCOUNT_ARN}:dataset/{group['name']}-missing/{kind.upper()}"
    expect(clients["personalize-events"], operation, records(group, kind, key, datasetArn=unknown),
           "ResourceNotFoundException", 404)


# --- personalize-runtime (docs/reference/personalize-api.md#runtime, #field-constraints)
# --------------------------------------------------------------------

CAMPAIGN = f"{ACCOUNT_ARN}:campaign/none"
RUNTIME_CASES = {
    "numResults 501": ("get_recommendations", {"campaignArn": CAMPAIGN, "userId": "u", "numResults": 501}),
    "numResults 51 with metadata": ("get_recommendations", {
        "campaignArn": CAMPAIGN, "userId": "u", "numResults": 51, "metadataColumns": {"ITEMS": ["GENRE"]}}),
    "campaign and recommender": ("get_recommendations", {"campaignArn": CAMPAIGN, "recommenderArn": CAMPAIGN}),
    "neither campaign nor recommender": ("get_recommendations", {"userId": "u"}),
    "userId of 257": ("get_recommendations", {"campaignArn": CAMPAIGN, "userId": "u" * 257}),
    "campaignArn pattern": ("get_recommendations", {"campaignArn": "campaign/none", "userId": "u"}),
    "filterValues key pattern": ("get_recommendations", {"campaignArn": CAMPAIGN, "filterValues": {"A-B": '"x"'}}),
    "filterValues 26 entries": ("get_recommendations", {
        "campaignArn": CAMPAIGN, "filterValues": {f"P{n}": '"x"' for n in range(26)}}),
    "two promotions": ("get_recommendations", {"campaignArn": CAMPAIGN, "promotions": [
        {"name": "a", "percentPromotedItems": 10}, {"name": "b", "percentPromotedItems": 10}]}),
    "promotion percent 101": ("get_recommendations", {"campaignArn": CAMPAIGN, "promotions": [
        {"name": "a", "percentPromotedItems": 101}]}),
    "metadataColumns other than ITEMS": ("get_recommendations", {
        "campaignArn": CAMPAIGN, "metadataColumns": {"USERS": ["SEGMENT"]}}),
    "inputList of 501": ("get_personalized_ranking", {
        "campaignArn": CAMPAIGN, "userId": "u", "inputList": [f"i{n}" for n in range(501)]}),
    "ranking without userId": ("get_personalized_ranking", {"campaignArn": CAMPAIGN, "inputList": ["i1"]}),
}


@pytest.mark.parametrize("case", RUNTIME_CASES)
def test_runtime_rules(clients, case):
    operation, kwargs = RUNTIME_CASES[case]
    expect(clients["personalize-runtime"], operation, kwargs, "InvalidInputException", 400)


def test_runtime_unknown_campaign(clients):
    expect(clients["personalize-runtime"], "get_recommendations", {"campaignArn": CAMPAIGN, "userId": "u"},
           "ResourceNotFoundException", 404)


# --- control plane (docs/reference/personalize-api.md#control-plane, #field-constraints)
# ----------------------------------------------------------------------------

def test_control_plane_rules(clients, group):
    control = clients["personalize"]
    expect(control, "create_dataset_group", {"name": "has space"}, "InvalidInputException", 400)
    expect(control, "create_dataset_group", {"name": "x" * 64}, "InvalidInputException")
    expect(control, "create_dataset_group", {"name": "ok", "domain": "RETAIL"}, "InvalidInputException")
    expect(control, "create_dataset_group", {"name": "ok", "roleArn": "role"}, "InvalidInputException")
    expect(control, "create_dataset_group", {"name": group["name"]}, "ResourceAlreadyExistsException")
    expect(control, "create_schema", {"name": "bad", "schema": "{"}, "InvalidInputException")
    expect(control, "create_schema", {"name": "bad", "schema": json.dumps(
        {**INTERACTIONS_SCHEMA, "fields": INTERACTIONS_SCHEMA["fields"][1:]})}, "InvalidInputException")
    expect(control, "create_schema", {"name": "bad", "schema": "x" * 20001}, "InvalidInputException")
    expect(control, "describe_dataset", {"datasetArn": f"{ACCOUNT_ARN}:dataset/none/ITEMS"},
           "ResourceNotFoundException", 400)
    expect(control, "create_event_tracker", {"name": "second", "datasetGroupArn": group["arn"]},
           "ResourceAlreadyExistsException")
    expect(control, "list_dataset_groups", {"nextToken": "not-a-token"}, "InvalidNextTokenException")
    expect(control, "list_dataset_groups", {"maxResults": 101}, "InvalidInputException")
    expect(control, "create_filter", {"name": "f", "datasetGroupArn": group["arn"], "filterExpression": "x" * 2501},
           "InvalidInputException")
    expect(control, "create_solution_version", {"solutionArn": f"{ACCOUNT_ARN}:solution/none"},
           "ResourceNotFoundException")
    expect(control, "create_campaign", {"name": "c", "solutionVersionArn": f"{ACCOUNT_ARN}:solution/none/abc",
                                        "minProvisionedTPS": 0}, "InvalidInputException")
    expect(control, "create_dataset_import_job", {
        "jobName": "j", "datasetArn": group["datasets"]["Items"], "dataSource": {"dataLocation": "ftp://x/y.csv"}},
        "InvalidInputException")


def test_unknown_operation_is_a_typed_client_error(local_personalize_url):
    import httpx

    answer = httpx.post(local_personalize_url + "/", content=b"{}", headers={
        "X-Amz-Target": "AmazonPersonalize.DescribeNothing", "Content-Type": "application/x-amz-json-1.1"})
    assert answer.status_code == 400
    assert answer.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert answer.json()["__type"] == "UnknownOperationException"


async def test_aiobotocore_clients_work(local_personalize_url):
    name = f"aio-{uuid.uuid4().hex[:8]}"
    async with aio_personalize_client(local_personalize_url, "personalize") as control:
        group = (await control.create_dataset_group(name=name))["datasetGroupArn"]
        schema = (await control.create_schema(name=name, schema=json.dumps(INTERACTIONS_SCHEMA)))["schemaArn"]
        await control.create_dataset(name=name, schemaArn=schema, datasetGroupArn=group, datasetType="Interactions")
        tracking_id = (await control.create_event_tracker(name=name, datasetGroupArn=group))["trackingId"]
        described = (await control.describe_dataset_group(datasetGroupArn=group))["datasetGroup"]
        assert described["status"] == "ACTIVE"
        with pytest.raises(control.exceptions.ResourceNotFoundException):
            await control.describe_dataset_group(datasetGroupArn=group + "-missing")
    async with aio_personalize_client(local_personalize_url, "personalize-events") as events:
        answer = await events.put_events(trackingId=tracking_id, userId="u1", sessionId="s1", eventList=[event()])
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
        with pytest.raises(events.exceptions.InvalidInputException):
            await events.put_events(trackingId=tracking_id, sessionId="s1",
                                    eventList=[event(properties='{"userId": "u2"}')])
    async with aio_personalize_client(local_personalize_url, "personalize-runtime") as runtime:
        with pytest.raises(runtime.exceptions.ResourceNotFoundException):
            await runtime.get_recommendations(campaignArn=CAMPAIGN, userId="u1")
