"""Validation: Personalize's limits and the dataset schema, one reason code per failure, records finished for the wire."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.destinations.personalize.schema import INTERACTIONS, ITEMS, USERS, load_schema
from connectors.destinations.personalize.validation import RecordRules
from connectors.destinations.personalize.unit import PersonalizeRecord
from hub.errors import RejectedError
from hub.events import Event, EventKind, Rejection, SourceRef

SCHEMAS = Path(__file__).parents[4] / "tests" / "data" / "schemas"
WITH_SCHEMAS = RecordRules({t: load_schema(SCHEMAS / f"{t.lower()}.avsc", t) for t in (INTERACTIONS, ITEMS, USERS)})
WITHOUT = RecordRules()


def interaction(session: str | None = "s1", user: str | None = "u1", **record) -> PersonalizeRecord:
    body = {"eventId": "m1", "eventType": "Product Viewed", "sentAt": 1_700_000_000.0, "itemId": "p1", **record}
    event = Event(kind=EventKind.INTERACTION, source=SourceRef(source_id="web", message_id="m1"),
                  timestamp=1_700_000_000.0, user_id=user, session_id=session)
    return PersonalizeRecord(event, event.source, EventKind.INTERACTION, body)


def catalog(kind: EventKind, record: dict) -> PersonalizeRecord:
    event = Event(kind=kind, source=SourceRef(source_id="web", message_id="m1"), timestamp=1.0)
    return PersonalizeRecord(event, event.source, kind, record)


def passed(result) -> dict:
    assert isinstance(result, list), result
    return result[0].record


def reason(result) -> str:
    assert isinstance(result, Rejection), result
    return result.reason


def test_a_valid_interaction_leaves_with_properties_as_a_json_string():
    record = passed(WITH_SCHEMAS.check(interaction(properties={"deviceType": "mobile", "numberOfRatings": "12",
                                                                "discount": True})))
    assert json.loads(record["properties"]) == {"deviceType": "mobile", "numberOfRatings": "12", "discount": "true"}
    assert isinstance(record["properties"], str)
    assert "properties" not in passed(WITHOUT.check(interaction(properties={})))  # 1..1024 chars: omit, not "{}"


@pytest.mark.parametrize("event, code", [
    (interaction(session=None), "missing_session_id"),
    # Personalize answers 200 and drops it (docs/reference/personalize-api.md#placeholder-ids)
    (interaction(session="null"), "invalid_session_id"),
    (interaction(user="undefined"), "invalid_user_id"),
    (interaction(user="u" * 257), "invalid_user_id"),
    (interaction(itemId=None), "missing_item_id"),
    (interaction(itemId=""), "invalid_item_id"),
    (interaction(itemId=12), "invalid_item_id"),
    (interaction(eventType="null"), "missing_event_type"),
    (interaction(eventType="e" * 257), "invalid_event_type"),
    (interaction(sentAt="2024-01-01"), "invalid_timestamp"),
    (interaction(sentAt=float("nan")), "invalid_timestamp"),
    (interaction(eventValue=float("inf")), "invalid_event_value"),
    (interaction(impression=[]), "invalid_impression"),
    (interaction(impression=[f"i{n}" for n in range(26)]), "invalid_impression"),
    (interaction(impression=["p1", "null"]), "invalid_impression"),
    (interaction(impression=["x" * 200] * 6), "invalid_impression"),  # > 1000 characters with separators
    (interaction(recommendationId="R" * 41), "invalid_recommendation_id"),
    (interaction(metricAttribution={"eventAttributionSource": "\t"}), "invalid_attribution_source"),
])
def test_ids_and_members_are_checked_against_the_api_limits(event, code):
    # A record as an import builds it goes through every rule; one the Mapper built is trusted for what the
    # Mapper guarantees (itemId, eventValue, impression: test_mapping.py), so `check` may pass those.
    as_imported = dict(event.record)
    result = WITHOUT.check(event)
    if isinstance(result, Rejection):
        assert result.reason == code
    else:
        with pytest.raises(RejectedError) as refused:
            WITHOUT.finish_interaction(as_imported)
        assert refused.value.reason == code


@pytest.mark.parametrize("key", ["userId", "SESSIONID", "eventType", "timestamp", "recommendationId", "impression",
                                 "session_id"])
def test_reserved_property_keys_are_rejected_case_insensitively(key):
    result = WITHOUT.check(interaction(properties={key: "x"}))
    assert reason(result) == "reserved_property" and key in result.message


def test_properties_over_1024_characters_are_rejected():
    assert passed(WITHOUT.check(interaction(properties={"k": "x" * 1000})))
    result = WITHOUT.check(interaction(properties={"k": "x" * 1017}))
    assert reason(result) == "properties_too_long" and "1025 characters" in result.message


@pytest.mark.parametrize("properties, code, field", [
    ({"colour": "red"}, "schema_violation", "colour"),
    ({"numberOfRatings": "twelve"}, "schema_violation", "numberOfRatings"),
    ({"numberOfRatings": 1.5}, "schema_violation", "NUMBER_OF_RATINGS"),
    ({"numberOfRatings": 2**31}, "schema_violation", "out of range"),
    ({"discount": "yes"}, "schema_violation", "discount"),
    ({"deviceType": "x" * 1001}, "value_too_long", "deviceType"),
    ({"deviceType": {"os": "ios"}}, "invalid_property", "deviceType"),
])
def test_schema_types_and_lengths(properties, code, field):
    result = WITH_SCHEMAS.check(interaction(properties=properties))
    assert reason(result) == code and field in result.message


def test_values_are_normalised_to_what_personalize_expects():
    record = passed(WITH_SCHEMAS.check(interaction(properties={
        "deviceType": ["mobile", "ios"], "number_of_ratings": 12.0, "discount": "FALSE"})))
    assert json.loads(record["properties"]) == {"deviceType": "mobile|ios", "numberOfRatings": "12", "discount": "false"}


def test_item_records_against_the_items_schema():
    record = passed(WITH_SCHEMAS.check(catalog(EventKind.ITEM, {"itemId": "p1", "properties": {
        "category": "shoes", "genres": ["a", "b"], "price": 19, "stock": "3", "description": "d" * 20_000}})))
    assert json.loads(record["properties"])["genres"] == "a|b" and json.loads(record["properties"])["price"] == "19.0"
    assert record["itemId"] == "p1"
    missing = WITH_SCHEMAS.check(catalog(EventKind.ITEM, {"itemId": "p1", "properties": {"genres": "a"}}))
    assert reason(missing) == "schema_violation" and "CATEGORY" in missing.message  # required: not nullable
    too_long = WITH_SCHEMAS.check(catalog(EventKind.ITEM, {"itemId": "p1", "properties": {
        "category": "c", "description": "d" * 20_001}}))
    assert reason(too_long) == "value_too_long"


def test_record_properties_limits_are_per_dataset():
    assert passed(WITHOUT.check(catalog(EventKind.ITEM, {"itemId": "i", "properties": {"k": "x" * 31_000}})))
    assert reason(WITHOUT.check(catalog(EventKind.ITEM, {"itemId": "i", "properties": {"k": "x" * 32_000}}))) == \
        "properties_too_long"
    assert reason(WITHOUT.check(catalog(EventKind.USER, {"userId": "u", "properties": {"k": "x" * 24_000}}))) == \
        "properties_too_long"
    assert reason(WITHOUT.check(catalog(EventKind.USER, {"userId": "null", "properties": {}}))) == "invalid_user_id"
    assert passed(WITHOUT.check(catalog(EventKind.USER, {"userId": "u", "properties": None}))) == {
        "userId": "u", "properties": "{}"}


def test_an_event_over_10_kb_is_rejected():
    emoji = "\U0001f600"  # 4 bytes in UTF-8, one character for the length limits
    event = interaction(eventId=emoji * 256, eventType=emoji * 256, itemId=emoji * 256,
                        impression=[emoji * 39 + str(n) for n in range(25)][:24],
                        properties={"note": emoji * 1000})
    result = WITHOUT.check(event)
    assert reason(result) == "event_too_large" and "10240" in result.message
