"""mParticle batch decoding: event types, commerce products, 64-bit mpid, identities, bad events."""

from __future__ import annotations

import pytest

from connectors.formats import mparticle
from hub.events import EventKind

MPID = -8_765_432_109_876_543_210  # beyond 2**53: a float would change it


def batch(*events, **fields):
    return {"mpid": MPID, "environment": "production", "user_identities": {"customer_id": "u-42"},
            "events": list(events), **fields}


def purchase(message_id="m-buy", **data):
    return {"event_type": "commerce_event", "data": {
        "source_message_id": message_id, "session_uuid": "S-1", "timestamp_unixtime_ms": 1_700_000_123_456,
        "currency_code": "EUR",
        "product_action": {"action": "purchase", "transaction_id": "o-1", "total_amount": 35.5, "products": [
            {"id": "sku-1", "name": "Mug", "price": 10.5, "quantity": 1, "brand": "B",
             "custom_attributes": {"color": "red", "price": "ignored"}},
            {"id": "sku-2", "price": 25, "quantity": 2},
        ]}, **data}}


def decode(b, **kw):
    return mparticle.decode_batch(b, source_id="mp", received_at=1_800_000_000.0, **kw)


def test_commerce_event_is_named_by_its_action_and_keeps_products_in_segment_names():
    (event,), rejections = decode(batch(purchase()))
    assert rejections == []
    assert (event.kind, event.call, event.name) == (EventKind.INTERACTION, "commerce_event", "purchase")
    assert event.properties["products"] == [
        {"color": "red", "product_id": "sku-1", "sku": "sku-1", "name": "Mug", "brand": "B", "price": 10.5,
         "quantity": 1},
        {"product_id": "sku-2", "sku": "sku-2", "price": 25, "quantity": 2},
    ]
    assert (event.properties["order_id"], event.properties["revenue"], event.properties["currency"]) == (
        "o-1", 35.5, "EUR")
    assert event.timestamp == pytest.approx(1_700_000_123.456)
    assert (event.message_id, event.session_id) == ("m-buy", "S-1")


def test_user_ids_the_64_bit_mpid_is_an_exact_string_and_the_customer_id_the_user():
    (event,), _ = decode(batch(purchase()))
    assert (event.user_id, event.anonymous_id) == ("u-42", str(MPID))
    (event,), _ = decode(batch(purchase(), mpid=str(2**63 - 1), user_identities=None))
    assert (event.user_id, event.anonymous_id) == (None, "9223372036854775807")
    (event,), _ = decode(batch(purchase()), user_id_identity="mpid")
    assert (event.user_id, event.anonymous_id) == (str(MPID), None)
    (event,), _ = decode(batch(purchase(), user_identities={"customerid": "legacy"}))
    assert event.user_id == "legacy"


@pytest.mark.parametrize("mpid", [1.5, 8.765432109876544e18, True, "12a", 2**63, "", [1]])
def test_a_non_integer_or_out_of_range_mpid_rejects_the_whole_batch(mpid):
    events, ((index, rejection),) = decode(batch(purchase(), mpid=mpid))
    assert events == [] and index is None
    assert rejection.reason == "invalid_id" and "mpid" in rejection.message
    assert rejection.raw["mpid"] == mpid  # the dead letter keeps the batch as it came


def test_a_batch_without_any_identity_is_rejected_and_placeholders_are_no_identity():
    _, ((_, rejection),) = decode({"events": [purchase()], "user_identities": {"customer_id": "null"}})
    assert rejection.reason == "missing_identity"


def test_custom_event_and_screen_view_and_skipped_types():
    custom = {"event_type": "custom_event", "data": {"event_name": "Searched", "custom_event_type": "search",
                                                     "custom_attributes": {"q": "mugs"}, "session_id": 77}}
    screen = {"event_type": "screen_view", "data": {"screen_name": "Home", "timestamp_unixtime_ms": 1_700_000_000_000}}
    skipped = [{"event_type": t, "data": {}} for t in ("session_start", "session_end", "opt_out")]
    events, rejections = decode(batch(custom, screen, *skipped, timestamp_unixtime_ms=1_600_000_000_000))
    assert rejections == []
    assert [(e.call, e.name) for e in events] == [("custom_event", "Searched"), ("screen_view", "Home")]
    assert events[0].properties == {"q": "mugs"} and events[0].session_id == "77"
    assert events[0].timestamp == 1_600_000_000.0  # no event timestamp: the batch's
    assert events[1].timestamp == 1_700_000_000.0


def test_bad_events_are_rejected_with_a_reason_while_the_good_ones_decode():
    bad = [
        {"event_type": "custom_event", "data": {"source_message_id": "no-name"}},
        {"event_type": "telepathy", "data": {}},
        {"event_type": "commerce_event", "data": {"product_action": {"action": "purchase", "products": [7]}}},
        {"event_type": "screen_view", "data": {"screen_name": "X", "timestamp_unixtime_ms": "soon"}},
        "not an event",
    ]
    events, rejections = decode(batch(purchase("a"), *bad, purchase("b")))
    assert [e.message_id for e in events] == ["a", "b"]
    assert [(i, r.reason) for i, r in rejections] == [
        (1, "missing_field"), (2, "unsupported_type"), (3, "invalid_type"), (4, "invalid_timestamp"),
        (5, "invalid_type")]
    assert rejections[0][1].source.message_id == "no-name"
    assert "products[0]" in rejections[2][1].message
    assert rejections[1][1].raw["events"] == [bad[1]]  # a one-event batch: replayable on its own


def test_identities_and_attributes_become_one_identify_first_with_traits():
    b = batch(purchase(), user_attributes={"tier": "gold", "$city": "Oslo"}, timestamp_unixtime_ms=1_700_000_000_000)
    identify, interaction = decode(b)[0]
    assert (identify.kind, identify.call) == (EventKind.IDENTIFY, "identify")
    assert (identify.user_id, identify.anonymous_id) == ("u-42", str(MPID))
    assert identify.traits == {"tier": "gold", "$city": "Oslo"}
    assert identify.timestamp == 1_700_000_000.0
    # Deterministic: the same user state decoded twice has the same message id.
    assert decode(b)[0][0].message_id == identify.message_id
    # Without attributes the interactions carry both ids themselves: no separate identify.
    assert [e.kind for e in decode(batch(purchase()))[0]] == [EventKind.INTERACTION]
    # An identities-only batch (a login) still links mpid and user.
    (login,), _ = decode(batch())
    assert login.kind is EventKind.IDENTIFY and login.user_id == "u-42"


def test_raw_is_a_one_event_batch_that_decodes_to_the_same_event_without_repeating_the_identify():
    b = batch(purchase("a"), purchase("b"), user_attributes={"tier": "gold"}, source_request_id="req-1")
    identify, first, second = decode(b)[0]
    assert first.raw["events"] == [b["events"][0]] and "user_attributes" not in first.raw
    (again,), _ = decode(first.raw)
    assert (again.message_id, again.user_id, again.properties) == ("a", first.user_id, first.properties)
    (identify_again,), _ = decode(identify.raw)
    assert identify_again.message_id == identify.message_id and identify_again.traits == {"tier": "gold"}


def test_message_ids_without_source_message_id_are_stable_and_distinct():
    one = {"event_type": "custom_event", "data": {"event_name": "A", "timestamp_unixtime_ms": 1_700_000_000_001}}
    two = {"event_type": "custom_event", "data": {"event_name": "A", "timestamp_unixtime_ms": 1_700_000_000_002}}
    first = [e.message_id for e in decode(batch(one, two))[0]]
    assert first == [e.message_id for e in decode(batch(one, two))[0]]
    assert len(set(first)) == 2
    with_event_id = {"event_type": "custom_event", "data": {"event_name": "A", "event_id": 6_000_000_000_000_000_001}}
    assert decode(batch(with_event_id))[0][0].message_id == "mparticle:6000000000000000001"


def test_impressions_and_promotions():
    impression = {"event_type": "commerce_event", "data": {"product_impressions": [
        {"product_impression_list": "Recommended", "products": [{"id": "p1"}, {"id": "p2"}]}]}}
    promotion = {"event_type": "commerce_event", "data": {"promotion_action": {"action": "view", "promotions": []}}}
    empty = {"event_type": "commerce_event", "data": {}}
    events, rejections = decode(batch(impression, promotion, empty))
    assert [e.name for e in events] == ["impression", "promotion_view"]
    assert [p["product_id"] for p in events[0].properties["products"]] == ["p1", "p2"]
    assert events[0].properties["impressions"][0]["list_id"] == "Recommended"
    assert [(i, r.reason) for i, r in rejections] == [(2, "missing_field")]


def test_a_product_without_an_id_keeps_no_invented_id():
    b = batch({"event_type": "commerce_event", "data": {"product_action": {
        "action": "view_detail", "products": [{"id": "null", "name": "Mystery"}]}}})
    (event,), _ = decode(b)
    assert event.properties["products"] == [{"name": "Mystery"}]


@pytest.mark.parametrize("value", [None, [], 5, "batch"])
def test_anything_but_an_object_is_an_invalid_batch(value):
    if value is None:
        value = {"mpid": 1, "events": {"not": "a list"}}
    events, ((index, rejection),) = decode(value)
    assert events == [] and index is None and rejection.reason == "invalid_type"
