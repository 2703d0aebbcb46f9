"""Server-side request validation: model constraints botocore skips, and the semantic rules (docs/reference/personalize-api.md#client-side-validation-in-botocore, #putevents, #getrecommendations)."""

from __future__ import annotations

import orjson
import pytest

from local_personalize.errors import InvalidInput
from local_personalize.validation import SERVICES, compile_shape, service_model, validate_request

TRACKED = {"trackingId": "t", "sessionId": "s"}


def event(**overrides):
    return {"eventType": "click", "itemId": "i1", "sentAt": 1_700_000_000, **overrides}


def test_every_input_shape_of_the_three_models_compiles():
    for service in SERVICES:
        model = service_model(service)
        for name in model.operation_names:
            shape = model.operation_model(name).input_shape
            if shape is not None:
                compile_shape(shape)({}, "", [])


@pytest.mark.parametrize("body, fragment", [
    ({**TRACKED, "eventList": [event()] * 11}, "less than or equal to 10"),
    ({**TRACKED, "eventList": []}, "greater than or equal to 1"),
    ({**TRACKED, "userId": "u" * 257, "eventList": [event()]}, "less than or equal to 256"),
    ({**TRACKED, "eventList": [event(impression=[f"i{n}" for n in range(26)])]}, "less than or equal to 25"),
    ({**TRACKED, "eventList": [event(recommendationId="R" * 41)]}, "less than or equal to 40"),
    ({**TRACKED, "eventList": [event(properties="x" * 1025)]}, "less than or equal to 1024"),
    ({**TRACKED, "eventList": [event(sentAt="yesterday")]}, "timestamp"),
    ({"sessionId": "s", "eventList": [event()]}, "Member must not be null"),
    ({**TRACKED, "eventList": [event(metricAttribution={"eventAttributionSource": "   "})]}, "pattern"),
    ({**TRACKED, "eventList": [event(properties="{not json")]}, "Error parsing properties json"),
    ({**TRACKED, "eventList": [event(properties='["a"]')]}, "must be a JSON object"),
    ({**TRACKED, "eventList": [event(properties='{"USERID": "u2"}')]}, "reserved keys"),
    ({**TRACKED, "eventList": [event(properties='{"impression": "a|b"}')]}, "reserved keys"),
])
def test_put_events_violations_are_invalid_input(body, fragment):
    with pytest.raises(InvalidInput, match=None) as raised:
        validate_request("personalize-events", "PutEvents", body)
    assert fragment in raised.value.message


def test_a_good_put_events_passes():
    properties = orjson.dumps({"numberOfRatings": "12"}).decode()
    validate_request("personalize-events", "PutEvents",
                     {**TRACKED, "userId": "u1", "eventList": [event(properties=properties, impression=["i1"])]})


@pytest.mark.parametrize("operation, list_key, id_key, limit", [
    ("PutItems", "items", "itemId", 32000), ("PutUsers", "users", "userId", 24000)])
def test_record_properties_limits(operation, list_key, id_key, limit):
    arn = "arn:aws:personalize:us-east-1:000000000000:dataset/g/ITEMS"
    too_long = '{"a": "' + "x" * limit + '"}'
    with pytest.raises(InvalidInput, match=f"less than or equal to {limit}"):
        validate_request("personalize-events", operation, {"datasetArn": arn, list_key: [
            {id_key: "r1", "properties": too_long}]})
    with pytest.raises(InvalidInput, match="less than or equal to 10"):
        validate_request("personalize-events", operation, {"datasetArn": arn, list_key: [{id_key: "r"}] * 11})
    with pytest.raises(InvalidInput, match="pattern"):
        validate_request("personalize-events", operation, {"datasetArn": "not-an-arn", list_key: [{id_key: "r"}]})


def test_names_must_match_the_whole_pattern():
    with pytest.raises(InvalidInput, match="pattern"):
        validate_request("personalize", "CreateDatasetGroup", {"name": "a b"})
    with pytest.raises(InvalidInput, match="enum"):
        validate_request("personalize", "CreateDatasetGroup", {"name": "ok", "domain": "RETAIL"})
    validate_request("personalize", "CreateDatasetGroup", {"name": "ok-name_1", "domain": "ECOMMERCE"})


def test_get_recommendations_rules():
    campaign = "arn:aws:personalize:us-east-1:000000000000:campaign/c"
    with pytest.raises(InvalidInput, match="exactly one"):
        validate_request("personalize-runtime", "GetRecommendations", {"userId": "u"})
    with pytest.raises(InvalidInput, match="exactly one"):
        validate_request("personalize-runtime", "GetRecommendations",
                         {"campaignArn": campaign, "recommenderArn": campaign})
    with pytest.raises(InvalidInput, match="500"):
        validate_request("personalize-runtime", "GetRecommendations", {"campaignArn": campaign, "numResults": 501})
    with pytest.raises(InvalidInput, match="50"):
        validate_request("personalize-runtime", "GetRecommendations",
                         {"campaignArn": campaign, "numResults": 51, "metadataColumns": {"ITEMS": ["GENRE"]}})
    with pytest.raises(InvalidInput, match="pattern"):
        validate_request("personalize-runtime", "GetRecommendations",
                         {"campaignArn": campaign, "filterValues": {"BAD-KEY": '"x"'}})


def test_file_paths_are_a_local_extension_of_s3_paths():
    body = {"jobName": "j", "datasetArn": "arn:aws:personalize:us-east-1:000000000000:dataset/g/ITEMS",
            "dataSource": {"dataLocation": "file:///tmp/items.csv"}}
    validate_request("personalize", "CreateDatasetImportJob", body)
    with pytest.raises(InvalidInput, match="pattern"):
        validate_request("personalize", "CreateDatasetImportJob", {**body, "dataSource": {"dataLocation": "ftp://x"}})
