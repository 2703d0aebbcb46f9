"""Identity as `build_stages` assembles it and the Personalize encoder as a destination runs it, behind
Pipeline.emit: Segment in, Personalize records out."""

from __future__ import annotations

import json

from connectors.destinations.encoding import EventEncoding
from connectors.formats.segment import decode_message
from hub.connector import Context, Outcome
from hub.delivery.dead_letter import DeadLetter
from hub.delivery.retry import RetryPolicy
from hub.delivery.runner import DestinationRunner
from hub.pipeline import Pipeline
from personalize_hub.config import parse_config
from personalize_hub.runtime import build_stages, provide
from tests.unit.hub.fakes import ListSink, RecordingDestination

FAST = RetryPolicy(base_delay_secs=0.001, max_delay_secs=0.002, max_attempts=2, max_elapsed_secs=1)


def segment(message: dict):
    return decode_message(message, source_id="web")


def personalize_encoding(config) -> EventEncoding:
    context = Context()
    provide(context, config)
    return EventEncoding("personalize", context)


async def test_segment_track_identify_and_order_through_identity_and_the_encoder(tmp_path):
    config = parse_config({"identity": {"store": {"type": "sqlite", "path": str(tmp_path / "id.sqlite3")}}}, {})
    stages = build_stages(config)
    destination = RecordingDestination(key=lambda e: e.session_id or "", encoder=personalize_encoding(config))
    runner = DestinationRunner(destination, destination.config.batch_policy(), FAST)
    await runner.start()
    sink = ListSink()
    pipeline = Pipeline(stages, [runner], DeadLetter(sink, FAST))
    events = [segment(m) for m in [
        {"type": "track", "event": "Product Viewed", "anonymousId": "a1", "messageId": "v1",
         "timestamp": "2024-01-01T10:00:00Z", "properties": {"product_id": "p1", "price": 5}},
        {"type": "identify", "anonymousId": "a1", "userId": "u1", "messageId": "id1",
         "timestamp": "2024-01-01T10:01:00Z", "traits": {"plan": "gold"}},
        {"type": "track", "event": "Order Completed", "anonymousId": "a1", "userId": "u1", "messageId": "o1",
         "timestamp": "2024-01-01T10:02:00Z", "properties": {"products": [{"product_id": "p1"}, {"name": "?"}]}},
        {"type": "page", "name": "Home", "anonymousId": "a1", "messageId": "pg1", "timestamp": "2024-01-01T10:03:00Z"},
        {"type": "alias", "previousId": "a1", "userId": "u1", "messageId": "al1", "timestamp": "2024-01-01T10:04:00Z"},
    ]]
    report = await pipeline.emit(events)
    await runner.close()
    await stages[0].close()  # the identity store
    assert report.outcomes == [Outcome.DELIVERED, Outcome.DELIVERED, Outcome.REJECTED, Outcome.DELIVERED,
                               Outcome.DELIVERED]
    assert sorted(destination.delivered) == ["id1", "o1:0", "v1"]
    (dead,) = sink.records
    assert dead["reason"] == "missing_item_id" and dead["source"]["message_id"] == "o1:1"
    assert (tmp_path / "id.sqlite3").exists()


async def test_every_interaction_leaves_with_a_session_and_a_wire_ready_record():
    config = parse_config({"identity": {"store": {"type": "memory"}},
                           "mapping": {"interactions": {"properties": {"COLOUR": ["product.color"]}}}}, {})
    stages = build_stages(config)
    current = [segment({"type": "track", "event": "Product Added", "anonymousId": "a9", "messageId": "m1",
                        "timestamp": 1_704_067_200_000, "properties": {"product_id": "p1", "color": ["red", "blue"]}})]
    for stage in stages:
        (current,) = await stage.apply(current)
    ((unit,),) = personalize_encoding(config).encode(current)
    assert unit.session_id and unit.user_id is None
    assert unit.record == {"eventId": "m1", "eventType": "Product Added", "sentAt": 1_704_067_200.0, "itemId": "p1",
                            "properties": json.dumps({"colour": "red|blue"}, separators=(",", ":"))}


def test_a_mapping_that_does_not_fit_the_schemas_fails_at_start_whichever_destinations_use_it(tmp_path):
    from pathlib import Path

    import pytest

    from hub.errors import ConfigError

    schema = Path(__file__).parents[4] / "tests" / "data" / "schemas" / "interactions.avsc"
    config = parse_config({
        "schemas": {"interactions": str(schema)},
        "mapping": {"interactions": {"properties": {"NOT_A_FIELD": ["properties.x"]}}},
        "destinations": [{"type": "file", "path": str(tmp_path / "events.jsonl"), "encoding": "event"}],
    }, {})
    with pytest.raises(ConfigError, match="NOT_A_FIELD: not a field of the Interactions schema"):
        provide(Context(), config)
