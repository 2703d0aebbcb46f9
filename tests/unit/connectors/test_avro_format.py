"""Avro: the Confluent wire format, decode errors as rejections, and the schema registry client's cache."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.formats import avro
from connectors.sources.schema_registry import SchemaRegistry
from hub.errors import RejectedError, RetryableError

TRACK_SCHEMA = {
    "type": "record", "name": "Track", "namespace": "shop",
    "fields": [
        {"name": "messageId", "type": "string"},
        {"name": "type", "type": "string"},
        {"name": "event", "type": ["null", "string"], "default": None},
        {"name": "userId", "type": ["null", "string"], "default": None},
        {"name": "mpid", "type": "long"},
        {"name": "properties", "type": {"type": "map", "values": ["null", "string", "double", "long"]}},
    ],
}
RECORD = {"messageId": "m1", "type": "track", "event": "Product Viewed", "userId": "u1",
          "mpid": -(2**63), "properties": {"product_id": "p1", "price": 9.5}}
PARSED = avro.parse_schema(TRACK_SCHEMA)


def test_confluent_frame_is_magic_zero_then_big_endian_schema_id():
    data = avro.encode_confluent(0x01020304, PARSED, RECORD)
    assert data[:5] == b"\x00\x01\x02\x03\x04"
    schema_id, body = avro.split_confluent(data)
    assert schema_id == 0x01020304
    assert avro.decode(body, PARSED) == RECORD  # the 64-bit mpid survives exactly


@pytest.mark.parametrize("data, words", [(b"", "too short"), (b"\x00\x00\x00", "too short"),
                                         (b"\x01\x00\x00\x00\x01payload", "magic byte 1")])
def test_unframed_data_is_rejected(data, words):
    with pytest.raises(RejectedError, match=words) as caught:
        avro.split_confluent(data)
    assert caught.value.reason == "invalid_avro"


def test_wrong_schema_leaves_bytes_over_and_is_rejected():
    short = avro.parse_schema({"type": "record", "name": "Only", "fields": [{"name": "messageId", "type": "string"}]})
    with pytest.raises(RejectedError, match="left after the record"):
        avro.decode(avro.encode(PARSED, RECORD), short)


def test_a_reader_schema_resolves_an_older_writer():
    reader = avro.parse_schema({**TRACK_SCHEMA, "fields": [*TRACK_SCHEMA["fields"],
                                                           {"name": "channel", "type": "string", "default": "web"}]})
    assert avro.decode(avro.encode(PARSED, RECORD), PARSED, reader)["channel"] == "web"
    incompatible = avro.parse_schema({"type": "record", "name": "Track", "namespace": "shop",
                                      "fields": [{"name": "required_new", "type": "string"}]})
    with pytest.raises(RejectedError) as caught:
        avro.decode(avro.encode(PARSED, RECORD), PARSED, incompatible)
    assert caught.value.reason == "schema_mismatch"


def test_invalid_schema_text_is_a_rejection():
    with pytest.raises(RejectedError) as caught:
        avro.parse_schema('{"type": "recrd"}')
    assert caught.value.reason == "invalid_schema"


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_a_rejection(data):
    try:
        avro.decode(data, PARSED)
    except RejectedError as err:
        assert err.reason == "invalid_avro"


class RegistryFake:
    """An httpx MockTransport answering like the Confluent REST API and counting requests."""

    def __init__(self, schemas: dict[int, str], status: int = 200):
        self.schemas, self.status, self.requests = schemas, status, []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url.path)
        await asyncio.sleep(0.01)  # long enough for concurrent callers to overlap
        if self.status != 200:
            return httpx.Response(self.status, json={"error_code": 50001, "message": "store error"})
        schema_id = int(request.url.path.rsplit("/", 1)[1])
        if schema_id not in self.schemas:
            return httpx.Response(404, json={"error_code": 40403, "message": "Schema not found"})
        return httpx.Response(200, json={"schema": self.schemas[schema_id]})


def registry(fake: RegistryFake) -> SchemaRegistry:
    return SchemaRegistry("http://registry.test", transport=httpx.MockTransport(fake))


async def test_each_schema_id_is_fetched_once_even_by_concurrent_callers():
    fake = RegistryFake({7: json.dumps(TRACK_SCHEMA)})
    client = registry(fake)
    schemas = await asyncio.gather(*(client.schema(7) for _ in range(20)))
    assert all(s is schemas[0] for s in schemas)
    assert await client.prefetch([7, 7]) == {}
    assert fake.requests == ["/schemas/ids/7"] and client.fetches == 1
    assert avro.decode(avro.encode(schemas[0], RECORD), client.cached(7)) == RECORD
    await client.close()


async def test_unknown_ids_are_rejections_and_outages_are_retryable():
    fake = RegistryFake({1: json.dumps(TRACK_SCHEMA), 3: '{"type": "protobuf?"}'})
    client = registry(fake)
    failures = await client.prefetch([1, 2, 3])
    assert {i: e.reason for i, e in failures.items()} == {2: "unknown_schema", 3: "invalid_schema"}
    assert client.cached(1) is not None
    fake.status = 503
    with pytest.raises(RetryableError, match="503"):
        await client.prefetch([4])
    fake.status = 200
    again = await client.prefetch([2])  # an unknown id is not cached: it may be registered later
    assert again[2].reason == "unknown_schema" and fake.requests.count("/schemas/ids/2") == 2
    await client.close()


async def test_a_404_that_is_not_the_registrys_schema_not_found_is_not_the_messages_fault():
    async def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html>no such path</html>")

    client = SchemaRegistry("http://wrong.test/oops", transport=httpx.MockTransport(proxy))
    with pytest.raises(RetryableError):
        await client.schema(1)
    await client.close()


async def test_non_avro_schemas_are_rejected():
    async def protobuf(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"schema": "syntax = 'proto3';", "schemaType": "PROTOBUF"})

    client = SchemaRegistry("http://registry.test", transport=httpx.MockTransport(protobuf))
    with pytest.raises(RejectedError) as caught:
        await client.schema(1)
    assert caught.value.reason == "unsupported_schema"
    await client.close()
