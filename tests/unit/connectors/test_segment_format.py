"""Segment message decoding: kinds, identities, timestamps, and reasons for bad messages."""

from __future__ import annotations

import pytest

from connectors.formats.segment import decode_message
from hub.errors import RejectedError
from hub.events import EventKind


def decode(message, **kw):
    return decode_message(message, source_id="web", received_at=1_700_000_000.0, **kw)


def test_track_becomes_an_interaction():
    event = decode({"type": "track", "event": "Product Viewed", "userId": 42, "anonymousId": "a",
                    "messageId": "m1", "properties": {"product_id": "p"}, "timestamp": "2024-01-01T00:00:00Z",
                    "context": {"sessionId": 99}})
    assert (event.kind, event.name, event.call) == (EventKind.INTERACTION, "Product Viewed", "track")
    assert (event.user_id, event.anonymous_id, event.session_id) == ("42", "a", "99")
    assert event.timestamp == 1_704_067_200 and event.message_id == "m1"


def test_identify_alias_page_group():
    assert decode({"type": "identify", "userId": "u", "traits": {"plan": "pro"}}).traits == {"plan": "pro"}
    alias = decode({"type": "alias", "userId": "u", "previousId": "a"})
    assert (alias.kind, alias.previous_id) == (EventKind.ALIAS, "a")
    page = decode({"type": "page", "anonymousId": "a", "name": "Home"})
    assert (page.call, page.name) == ("page", "Home")
    assert decode({"type": "group", "userId": "u", "groupId": "g"}) is None


def test_clock_skew_is_corrected_like_segment():
    event = decode({"type": "track", "event": "e", "userId": "u", "originalTimestamp": 1_699_999_000.0,
                    "sentAt": 1_699_999_100.0})
    assert event.timestamp == 1_700_000_000.0 - 100.0


def test_missing_message_id_is_derived_from_content():
    message = {"type": "track", "event": "e", "userId": "u", "timestamp": 1_700_000_005}
    assert decode(dict(message)).message_id == decode(dict(message)).message_id
    assert decode({**message, "userId": "v"}).message_id != decode(message).message_id


def test_batch_context_is_merged_and_message_wins():
    event = decode({"type": "track", "event": "e", "userId": "u", "context": {"ip": "2"}},
                   batch_context={"ip": "1", "locale": "fr"})
    assert event.context == {"ip": "2", "locale": "fr"}


@pytest.mark.parametrize(
    ("message", "reason", "field"),
    [
        ({"type": "track", "userId": "u"}, "missing_field", "event"),
        ({"type": "track", "event": "e"}, "missing_identity", "userId"),
        ({"type": "track", "event": "e", "userId": "null"}, "missing_identity", "userId"),
        ({"type": "track", "event": "e", "userId": "u", "properties": [1]}, "invalid_type", "properties"),
        ({"type": "track", "event": "e", "userId": "u", "timestamp": "soon"}, "invalid_timestamp", "timestamp"),
        ({"type": "teleport", "userId": "u"}, "unsupported_type", "type"),
        ({"type": "alias", "userId": "u"}, "missing_field", "previousId"),
        (["not", "an", "object"], "invalid_type", "object"),
        ({"type": "track", "event": "e", "userId": 1.2345678901234568e22}, "invalid_type", "userId"),
    ],
)
def test_bad_messages_are_rejected_with_reason_and_field(message, reason, field):
    with pytest.raises(RejectedError) as err:
        decode(message)
    assert err.value.reason == reason and field in err.value.message


def test_single_call_endpoint_forces_the_type():
    assert decode({"event": "e", "userId": "u"}, call="track").call == "track"
