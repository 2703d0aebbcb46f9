"""Mapping: Segment E-commerce Spec v2 and mParticle commerce events → PutEvents / PutItems / PutUsers records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from connectors.destinations.personalize.encoder import PersonalizeEncoder
from connectors.destinations.personalize.mapping import MappingConfig, Mapper
from connectors.destinations.personalize.schema import INTERACTIONS, ITEMS, USERS, load_schema
from hub.errors import ConfigError
from hub.events import Event, EventKind, Rejection, SourceRef

ROOT = Path(__file__).parents[4]
SCHEMAS = ROOT / "tests" / "data" / "schemas"
T0 = 1_700_000_000.0


def ev(name: str | None, properties: dict | None = None, *, message_id: str = "m1", call: str = "track",
       kind: EventKind = EventKind.INTERACTION, session: str | None = "s1", user: str | None = "u1",
       traits: dict | None = None, context: dict | None = None) -> Event:
    return Event(kind=kind, source=SourceRef(source_id="web", message_id=message_id), timestamp=T0, name=name,
                 call=call, user_id=user, session_id=session, properties=properties or {}, traits=traits or {},
                 context=context or {}, raw={"messageId": message_id})


def stage(schemas: dict | None = None, **config) -> Mapper:
    return Mapper(MappingConfig.model_validate(config), schemas)


def skipped(reason: str) -> float:
    return REGISTRY.get_sample_value("hub_events_skipped_total", {"reason": reason}) or 0.0


def one(result) -> dict:
    assert isinstance(result, list) and len(result) == 1, result
    return result[0].record


@pytest.mark.parametrize("name", ["Product Viewed", "Product Clicked", "Product Added", "Product Removed",
                                  "Product Added to Wishlist"])
def test_segment_product_events_become_interactions_named_after_the_event(name):
    result = stage().map(ev(name, {"product_id": "p1", "sku": "SKU-1", "price": 19.99, "name": "Shoe"}))
    assert one(result) == {"eventId": "m1", "eventType": name, "sentAt": T0, "itemId": "p1", "eventValue": 19.99}
    assert result[0].kind is EventKind.INTERACTION and result[0].session_id == "s1"


def test_the_item_id_falls_back_to_sku_and_placeholders_count_as_missing():
    mapping = stage()
    assert one(mapping.map(ev("Product Viewed", {"sku": "SKU-1"})))["itemId"] == "SKU-1"
    assert one(mapping.map(ev("Product Viewed", {"product_id": "null", "sku": 42})))["itemId"] == "42"
    rejected = mapping.map(ev("Product Viewed", {"product_id": "undefined", "name": "Shoe"}))
    assert isinstance(rejected, Rejection) and rejected.reason == "missing_item_id"
    # never the messageId (docs/reference/rudderstack.md#item-id-fallback)
    assert "product.product_id / product.sku" in rejected.message


def test_an_item_id_that_is_not_an_id_is_rejected():
    rejected = stage().map(ev("Product Viewed", {"product_id": {"id": 1}}))
    assert rejected.reason == "invalid_item_id" and "product.product_id" in rejected.message


def test_order_completed_fans_out_one_interaction_per_product_and_rejects_only_the_bad_line():
    order = ev("Order Completed", {"order_id": "o1", "products": [
        {"product_id": "p1", "price": 10}, {"sku": "s2", "price": "2.5"}, {"name": "gift wrap"}, "junk",
    ]})
    children = stage().map(order)
    first, second, no_id, junk = children
    assert [first.message_id, second.message_id] == ["m1:0", "m1:1"]
    assert first.record == {"eventId": "m1:0", "eventType": "Order Completed", "sentAt": T0, "itemId": "p1",
                            "eventValue": 10.0}
    assert second.record["itemId"] == "s2" and second.record["eventValue"] == 2.5
    assert isinstance(no_id, Rejection) and no_id.reason == "missing_item_id"
    assert no_id.message.startswith("properties.products[2]:") and no_id.source.message_id == "m1:2"
    assert isinstance(junk, Rejection) and junk.reason == "invalid_product"
    assert junk.message == "properties.products[3]: expected an object, got str"


def test_an_order_without_products_is_rejected():
    rejected = stage().map(ev("Order Completed", {"order_id": "o1", "revenue": 10}))
    assert rejected.reason == "missing_item_id" and "properties.products" in rejected.message


def test_mparticle_commerce_actions_map_like_segment_with_the_action_as_event_type():
    purchase = ev("purchase", {"products": [{"product_id": "p1", "sku": "p1", "price": 5}]}, call="commerce_event")
    (child,) = stage().map(purchase)
    assert child.record["eventType"] == "purchase" and child.record["itemId"] == "p1"


def test_unmapped_events_are_skipped_and_counted():
    before = skipped("unmapped_event")
    mapping = stage()
    assert mapping.map(ev("Checkout Started", {"product_id": "p1"})) == []
    assert mapping.map(ev("Home", {"product_id": "p1"}, call="page")) == []  # page views: not by default
    assert mapping.map(ev("Product Viewed", {"product_id": "p1"}, call="screen")) == []
    assert skipped("unmapped_event") == before + 3


def test_the_allow_list_and_event_types_are_configurable():
    mapping = stage(interactions={"events": {"Product Viewed": {"event_type": "view"}, "Video Played": None},
                                  "call_event_types": {"page": "Page Viewed"}})
    assert one(mapping.map(ev("Product Viewed", {"product_id": "p1"})))["eventType"] == "view"
    assert one(mapping.map(ev("Video Played", {"product_id": "v1"})))["eventType"] == "Video Played"
    assert one(mapping.map(ev("Home", {"product_id": "p1"}, call="page")))["eventType"] == "Page Viewed"
    assert mapping.map(ev("Product Clicked", {"product_id": "p1"})) == []  # replaced the default allow-list


def test_event_value_must_be_a_number_and_is_never_guessed():
    mapping = stage()
    assert one(mapping.map(ev("Product Viewed", {"product_id": "p1", "price": " 9.5 "})))["eventValue"] == 9.5
    for bad in ("3.4abc", True, "nan", [1]):
        rejected = mapping.map(ev("Product Viewed", {"product_id": "p1", "price": bad}))
        assert rejected.reason == "invalid_event_value" and "product.price" in rejected.message


def test_recommendation_id_and_explicit_impressions_come_from_their_paths():
    record = one(stage().map(ev("Product Clicked", {
        "product_id": "p2", "recommendation_id": "RID-1", "impression": "p1|p2|null|p3|p2"})))
    assert record["recommendationId"] == "RID-1" and record["impression"] == ["p1", "p2", "p3"]


def test_a_product_list_view_feeds_the_impression_of_the_next_interaction_from_it():
    mapping = stage()
    shown = [{"product_id": f"p{i}"} for i in range(30)]
    before = skipped("list_view")
    assert mapping.map(ev("Product List Viewed", {"recommendation_id": "RID-9", "products": shown})) == []
    assert skipped("list_view") == before + 1
    elsewhere = one(mapping.map(ev("Product Clicked", {"product_id": "p3"}, session="s2", message_id="m2")))
    not_listed = one(mapping.map(ev("Product Clicked", {"product_id": "zz"}, message_id="m3")))
    clicked = one(mapping.map(ev("Product Clicked", {"product_id": "p3"}, message_id="m4")))
    again = one(mapping.map(ev("Product Viewed", {"product_id": "p3"}, message_id="m5")))
    assert "impression" not in elsewhere and "impression" not in not_listed
    # PutEvents takes at most 25 (docs/reference/personalize-api.md#putevents)
    assert clicked["impression"] == [f"p{i}" for i in range(25)]
    assert clicked["recommendationId"] == "RID-9"
    assert "impression" not in again  # one interaction per list view


def test_mparticle_product_impressions_are_a_list_view():
    mapping = stage()
    impression = ev("impression", {"products": [{"product_id": "a"}, {"product_id": "b"}]}, call="commerce_event")
    assert mapping.map(impression) == []
    (child,) = mapping.map(ev("click", {"products": [{"product_id": "b"}]}, call="commerce_event", message_id="m2"))
    assert child.record["impression"] == ["a", "b"]


def test_properties_are_allow_listed_from_the_schema_and_renamed_to_camel_case():
    schemas = {INTERACTIONS: load_schema(SCHEMAS / "interactions.avsc", INTERACTIONS)}
    record = one(stage(schemas).map(ev("Product Viewed", {
        "product_id": "p1", "device_type": "mobile", "NUMBER_OF_RATINGS": 12, "discount": True, "secret": "x"})))
    assert record["properties"] == {"deviceType": "mobile", "numberOfRatings": 12, "discount": True}


def test_configured_properties_read_any_path():
    schemas = {INTERACTIONS: load_schema(SCHEMAS / "interactions.avsc", INTERACTIONS)}
    mapping = stage(schemas, interactions={"properties": {"DEVICE_TYPE": ["context.device.type"]}})
    record = one(mapping.map(ev("Product Viewed", {"product_id": "p1", "discount": True},
                                context={"device": {"type": "tablet"}})))
    assert record["properties"] == {"deviceType": "tablet"}


def test_a_schema_without_event_value_gets_none_and_no_schema_means_no_properties():
    schema = load_schema('{"type": "record", "name": "Interactions", "fields": [{"name": "USER_ID", "type": "string"},'
                         '{"name": "ITEM_ID", "type": "string"}, {"name": "TIMESTAMP", "type": "long"}]}', INTERACTIONS)
    record = one(stage({INTERACTIONS: schema}).map(ev("Product Viewed", {"product_id": "p1", "price": 3})))
    assert "eventValue" not in record
    assert "properties" not in one(stage().map(ev("Product Viewed", {"product_id": "p1", "color": "red"})))


@pytest.mark.parametrize("properties, problem", [
    ({"NOT_A_FIELD": ["properties.x"]}, "not a field of the Interactions schema"),
    ({"EVENT_VALUE": ["properties.x"]}, "a reserved field"),
])
def test_configured_properties_are_checked_against_the_schema(properties, problem):
    schemas = {INTERACTIONS: load_schema(SCHEMAS / "interactions.avsc", INTERACTIONS)}
    with pytest.raises(ConfigError, match=problem):
        stage(schemas, interactions={"properties": properties})


def test_a_bad_path_is_a_config_error():
    with pytest.raises(ValueError, match="must start with one of"):
        MappingConfig.model_validate({"interactions": {"item_id": ["product_id"]}})


def test_catalog_upserts_and_removals_become_item_records():
    schemas = {ITEMS: load_schema(SCHEMAS / "items.avsc", ITEMS)}
    mapping = stage(schemas)
    (upsert,) = mapping.map(ev("Product Updated", {"product_id": "p1", "category": "shoes", "genres": ["a", "b"],
                                                   "price": 20, "creation_timestamp": "2024-01-01T00:00:00Z"}))
    assert upsert.kind is EventKind.ITEM
    assert upsert.record == {"itemId": "p1", "properties": {
        "category": "shoes", "genres": ["a", "b"], "price": 20, "creationTimestamp": 1704067200, "available": "true"}}
    (removal,) = mapping.map(ev("Product Deleted", {"product_id": "p1", "category": "shoes"}))
    assert removal.record["properties"]["available"] == "false"


def test_a_removal_needs_a_field_to_record_it():
    schema = load_schema(ROOT / "examples" / "schemas" / "items.avsc", ITEMS)
    no_flag = load_schema(schema_without(SCHEMAS / "items.avsc", "AVAILABLE"), ITEMS)
    rejected = stage({ITEMS: no_flag}).map(ev("Product Deleted", {"product_id": "p1"}))
    assert rejected.reason == "removal_not_configured"
    assert one(stage({ITEMS: schema}).map(ev("Product Deleted", {"product_id": "p1"})))["properties"] == {
        "available": "false"}


def schema_without(path: Path, field: str) -> str:
    document = json.loads(path.read_text())
    document["fields"] = [f for f in document["fields"] if f["name"] != field]
    return json.dumps(document)


def test_item_records_from_a_catalog_topic_need_an_id():
    mapping = stage()
    (item,) = mapping.map(ev(None, {"item_id": "i9", "brand": "acme"}, kind=EventKind.ITEM, call=None))
    assert item.record == {"itemId": "i9", "properties": {"brand": "acme", "available": "true"}}
    rejected = mapping.map(ev(None, {"brand": "acme"}, kind=EventKind.ITEM, call=None))
    assert rejected.reason == "missing_item_id"


def test_identify_traits_become_a_user_record_and_a_bare_identify_is_skipped():
    mapping = stage()
    identify = ev(None, kind=EventKind.IDENTIFY, call="identify", traits={"plan": "pro", "email": "x@y.z"})
    (user,) = mapping.map(identify)
    assert user.kind is EventKind.USER and user.record == {"userId": "u1", "properties": {"plan": "pro"}}
    before = skipped("no_user_properties")
    assert mapping.map(ev(None, kind=EventKind.IDENTIFY, call="identify", traits={"email": "x@y.z"})) == []
    assert skipped("no_user_properties") == before + 1
    anonymous = mapping.map(ev(None, kind=EventKind.IDENTIFY, call="identify", user="null", traits={"plan": "pro"}))
    assert anonymous.reason == "missing_user_id"


def test_user_records_follow_the_users_schema():
    schemas = {USERS: load_schema(SCHEMAS / "users.avsc", USERS)}
    (user,) = stage(schemas).map(ev(None, kind=EventKind.USER, call=None, traits={"AGE": 40, "gender": "f"}))
    assert user.record == {"userId": "u1", "properties": {"age": 40, "gender": "f"}}


def test_the_encoder_keeps_one_result_per_event_in_order():
    events = [ev("Product Viewed", {"product_id": "p1"}), ev("Nope"), ev("Product Viewed", {})]
    results = PersonalizeEncoder().encode(events)
    assert len(results) == 3 and results[1] == [] and isinstance(results[2], Rejection)
