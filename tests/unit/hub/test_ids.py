"""hub/ids.py: the one placeholder-id rule, applied alike by both webhook formats and the identity stage."""

from __future__ import annotations

import pytest

from connectors.formats import mparticle
from connectors.formats.segment import decode_message
from hub.ids import is_placeholder_id, real_id


@pytest.mark.parametrize("value", ["", "  ", "null", "NULL", " undefined ", "None", "nil", "NaN",
                                   "\xa0null", "\u3000none", "\x1cnil"])  # padded with what str.strip removes
def test_placeholders_are_missing_ids(value):
    assert is_placeholder_id(value)
    assert real_id(value) is None


@pytest.mark.parametrize("value", ["u-1", "0", "nullable", "x" * 40])
def test_real_ids_are_kept_stripped(value):
    assert not is_placeholder_id(value)
    assert real_id(f" {value} ") == value


@pytest.mark.parametrize("placeholder", ["nil", "NaN", "NULL"])
def test_segment_and_mparticle_drop_the_same_placeholders(placeholder):
    segment_event = decode_message(
        {"type": "track", "event": "Product Viewed", "userId": placeholder, "anonymousId": "a-1",
         "messageId": "m-1", "timestamp": "2026-01-01T00:00:00Z"}, source_id="web", received_at=1_800_000_000.0)
    events, _ = mparticle.decode_batch(
        {"mpid": "1", "environment": "production", "user_identities": {"customer_id": placeholder},
         "events": [{"event_type": "custom_event", "data": {"event_name": "Viewed", "source_message_id": "m-2",
                                                            "timestamp_unixtime_ms": 1_700_000_000_000}}]},
        source_id="mp", received_at=1_800_000_000.0)
    assert segment_event.user_id is None
    assert events and all(event.user_id is None for event in events)
