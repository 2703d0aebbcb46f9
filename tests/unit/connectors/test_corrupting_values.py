"""Values once stored corrupted: numeric ids beyond 64 bits (passed through a float) and absurd timestamps."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from connectors.formats import avro, native
from connectors.sources.kafka_decode import RecordDecoder
from personalize_hub.config import parse_config
from hub.events import Event, EventKind, SourceRef, TimestampWindow, set_timestamp_window
from personalize_hub.ingest import build_app
from personalize_hub.runtime import Hub
from tests.unit.connectors.test_kafka_source import Record

BIG = 123456789012345678901234567890  # beyond 64 bits; orjson made it 123456789012345677877719597056
BIG_JSON = str(BIG).encode()


def segment_track(item_id: bytes, user_id: bytes = b'"u1"', timestamp: bytes = b'"2024-05-01T10:00:00Z"') -> bytes:
    return (b'{"type": "track", "event": "Product Viewed", "messageId": "m1", "userId": ' + user_id
            + b', "context": {"sessionId": "s1"}, "timestamp": ' + timestamp + b', "properties": {"product_id": '
            + item_id + b"}}")


def mparticle_batch(item_id: bytes, mpid: bytes = b"5") -> bytes:
    return (b'{"mpid": ' + mpid + b', "events": [{"event_type": "commerce_event", "data": {'
            b'"timestamp_unixtime_ms": 1714557600000, "product_action": {"action": "view", "products": '
            b'[{"id": ' + item_id + b"}]}}}]}")


def test_kafka_json_keeps_big_numeric_ids_exact():
    (event,), _ = RecordDecoder("k", "segment").decode(Record(1, segment_track(BIG_JSON, BIG_JSON)))
    assert event.user_id == str(BIG) and event.properties["product_id"] == BIG
    (event,), _ = RecordDecoder("k", "mparticle").decode(Record(2, mparticle_batch(BIG_JSON)))
    assert str(BIG) in repr(event.to_dict()) and "e+29" not in repr(event.to_dict())
    # mParticle's mpid is a signed 64-bit id by definition: beyond it, rejected with the reason.
    _, (rejection,) = RecordDecoder("k", "mparticle").decode(Record(3, mparticle_batch(b"1", BIG_JSON)))
    assert rejection.reason == "invalid_id" and str(BIG) in rejection.message


def test_avro_keeps_string_ids_and_has_no_lossy_path():
    schema = avro.parse_schema({"type": "record", "name": "T", "fields": [
        {"name": "type", "type": "string"}, {"name": "event", "type": "string"},
        {"name": "userId", "type": "string"}, {"name": "messageId", "type": "string"}]})
    value = avro.encode(schema, {"type": "track", "event": "Signed Up", "userId": str(BIG), "messageId": "a1"})
    decoder = RecordDecoder("k", "avro", avro_dialect="segment", local_schema=schema, confluent_framing=False)
    (event,), _ = decoder.decode(Record(3, value))
    assert event.user_id == str(BIG)


@pytest.fixture
async def hub_client(tmp_path):
    config = parse_config({
        "sources": [{"type": "segment_webhook", "id": "web", "write_keys": ["key"]},
                    {"type": "mparticle_webhook", "id": "mp", "api_key": "k", "api_secret": "s"}],
        "destinations": [{"type": "file", "id": "out", "path": str(tmp_path / "out.jsonl")}],
        "dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl")},
        "identity": {"enabled": False}, "timestamps": {"earliest": "2010-01-01T00:00:00Z"},
    }, {})
    hub = Hub(config)
    await hub.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(hub)), base_url="http://hub") as client:
        client.tmp_path = tmp_path
        yield client
    await hub.stop()
    set_timestamp_window(TimestampWindow())  # the window is process-wide: give the next test the default


def written(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_segment_webhook_delivers_the_exact_item_id(hub_client):
    auth = {"Authorization": "Basic " + base64.b64encode(b"key:").decode(), "Content-Type": "application/json"}
    response = await hub_client.post("/v1/track", content=segment_track(BIG_JSON), headers=auth)
    assert response.status_code == 200, response.text
    (record,) = written(hub_client.tmp_path / "out.jsonl")
    assert json.dumps(record).count(str(BIG)) >= 1 and "123456789012345677877719597056" not in json.dumps(record)


async def test_an_id_that_is_already_an_imprecise_float_is_rejected_not_rounded(hub_client):
    auth = {"Authorization": "Basic " + base64.b64encode(b"key:").decode(), "Content-Type": "application/json"}
    response = await hub_client.post("/v1/track", content=segment_track(b"1.2345678901234568e29"), headers=auth)
    assert response.status_code == 400 and response.json()["reason"] == "invalid_item_id", response.text
    assert "exact" in response.json()["message"]


@pytest.mark.parametrize("timestamp", [b"1e30", b'"9999-12-31T23:59:59Z"', b'"2009-12-31T23:59:59Z"'])
async def test_timestamps_outside_the_configured_window_are_400_with_the_reason(hub_client, timestamp):
    auth = {"Authorization": "Basic " + base64.b64encode(b"key:").decode(), "Content-Type": "application/json"}
    response = await hub_client.post("/v1/track", content=segment_track(b'"p1"', timestamp=timestamp), headers=auth)
    assert response.status_code == 400 and response.json()["reason"] == "invalid_timestamp", response.text
    assert "2010-01-01T00:00:00Z" in response.json()["message"]
    assert not (hub_client.tmp_path / "out.jsonl").exists() or written(hub_client.tmp_path / "out.jsonl") == []


def test_kafka_mparticle_and_native_records_outside_the_window_are_rejected():
    far = mparticle_batch(b'"p1"').replace(b"1714557600000", b"253402300799000")
    _, (rejection,) = RecordDecoder("k", "mparticle").decode(Record(5, far))
    assert rejection.reason == "invalid_timestamp"
    event = Event(kind=EventKind.INTERACTION, source=SourceRef(source_id="w", message_id="n1"), timestamp=1e30)
    _, (rejection,) = RecordDecoder("k", "native").decode(Record(6, native.encode(event)))
    assert rejection.reason == "invalid_timestamp"

