"""Content-Encoding on the webhook routes: gzip/deflate inflated within each route's limit, bad data a clear 4xx."""

from __future__ import annotations

import base64
import gzip
import json
import tracemalloc
import zlib

import pytest

from connectors.sources.webhook_http import BodyInflater, RequestRejected
from tests.unit.connectors.webhook_hub import webhook_client

WRITE_KEY = "wk"
MP_AUTH = ("mp-key", "mp-secret")


@pytest.fixture
async def client(tmp_path):
    async with webhook_client(tmp_path, [
        {"type": "segment_webhook", "id": "web", "write_keys": [WRITE_KEY]},
        {"type": "mparticle_webhook", "id": "mp", "api_key": MP_AUTH[0], "api_secret": MP_AUTH[1]},
    ]) as c:
        yield c


def segment_auth() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}


def written(client) -> list[str]:
    path = client.tmp_path / "out.jsonl"
    return [json.loads(line)["source"]["message_id"] for line in path.read_text().splitlines()] if path.exists() else []


def batch(*ids: str) -> bytes:
    messages = [{"type": "track", "event": "Product Viewed", "userId": "u1", "messageId": i,
                 "properties": {"product_id": "p1"}} for i in ids]
    return json.dumps({"batch": messages, "writeKey": WRITE_KEY}).encode()


def deflate(data: bytes, raw: bool) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def bomb(inflated_mib: int) -> bytes:
    """gzip of `inflated_mib` MiB of spaces, built without holding them: ~1 KB of gzip per MiB."""
    packer = zlib.compressobj(9, wbits=16 + zlib.MAX_WBITS)
    block = b" " * (1 << 20)
    return b"".join(packer.compress(block) for _ in range(inflated_mib)) + packer.flush()


@pytest.mark.parametrize(("encoding", "encode"), [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", lambda body: deflate(body, raw=False)),  # zlib-wrapped, as RFC 9110 means it
    ("deflate", lambda body: deflate(body, raw=True)),  # raw, as some clients send it
    ("identity", lambda body: body),
    ("GZip, identity", gzip.compress),
])
async def test_compressed_batches_are_inflated(client, encoding, encode):
    response = await client.post("/v1/batch", content=encode(batch("m1", "m2")),
                                 headers={"Content-Encoding": encoding, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 2
    assert written(client) == ["m1", "m2"]


async def test_gzip_members_concatenated_are_one_body():
    body = batch("m1")
    inflater = BodyInflater("gzip", 10_000)
    inflater.feed(gzip.compress(body[:10]) + gzip.compress(body[10:]))
    assert inflater.finish() == body


async def test_inflation_fed_byte_by_byte():
    body = batch("m1", "m2")
    for coding, packed in [("gzip", gzip.compress(body)), ("deflate", deflate(body, raw=True)),
                           ("deflate", deflate(body, raw=False))]:
        inflater = BodyInflater(coding, 10_000)
        for i in range(len(packed)):
            inflater.feed(packed[i:i + 1])
        assert inflater.finish() == body


@pytest.mark.parametrize("route", ["/v1/batch", "/v1/track", "/v2/events", "/v2/bulkevents"])
async def test_unknown_encoding_is_415_naming_it(client, route):
    response = await client.post(route, content=b"{}", headers={"Content-Encoding": "br", **segment_auth()},
                                 auth=MP_AUTH if route.startswith("/v2") else None)
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_encoding" and "'br'" in response.json()["message"]


async def test_stacked_encodings_are_415(client):
    response = await client.post("/v1/batch", content=gzip.compress(gzip.compress(batch("m1"))),
                                 headers={"Content-Encoding": "gzip, gzip", **segment_auth()})
    assert response.status_code == 415


async def test_gzip_bomb_is_413_with_memory_bounded_by_the_limit(client):
    packed = bomb(64)
    assert len(packed) < 100_000
    tracemalloc.start()
    try:
        response = await client.post("/v1/batch", content=packed,
                                     headers={"Content-Encoding": "gzip", **segment_auth()})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"
    assert "inflated body exceeds the 512000-byte limit" in response.json()["message"]
    # The request's own bytes, one limit's worth of output and the test's transport: far below 64 MiB.
    assert peak < 4 * 500 * 1024 + 2 * len(packed), peak


@pytest.mark.parametrize(("route", "limit"), [("/v1/track", 32 * 1024), ("/v2/events", 128 * 1024),
                                              ("/v2/bulkevents", 256 * 1024)])
async def test_each_route_limits_its_inflated_body(client, route, limit):
    response = await client.post(route, content=gzip.compress(b" " * (limit + 1)),
                                 headers={"Content-Encoding": "gzip", **segment_auth()},
                                 auth=MP_AUTH if route.startswith("/v2") else None)
    assert response.status_code == 413 and f"{limit}-byte limit" in response.json()["message"]


@pytest.mark.parametrize(("encoding", "packed", "problem"), [
    ("gzip", gzip.compress(batch("m1"))[:-12], "gzip body is truncated"),
    ("gzip", b"not gzip at all", "gzip body is corrupt"),
    ("gzip", gzip.compress(batch("m1")) + b"junk", "gzip body is corrupt"),
    ("deflate", deflate(batch("m1"), raw=False)[:-6], "deflate body is truncated"),
    ("deflate", deflate(batch("m1"), raw=True) + b"junk", "data after the end of the stream"),
    ("deflate", b"x", "deflate body is truncated"),
])
async def test_truncated_or_corrupt_data_is_400_naming_the_problem(client, encoding, packed, problem):
    response = await client.post("/v1/batch", content=packed, headers={"Content-Encoding": encoding, **segment_auth()})
    assert response.status_code == 400
    assert response.json()["code"] == "corrupt_encoding" and problem in response.json()["message"]
    assert written(client) == []


async def test_gzip_of_non_json_is_the_usual_400(client):
    response = await client.post("/v1/batch", content=gzip.compress(b"\xff\xfe not json"),
                                 headers={"Content-Encoding": "gzip", **segment_auth()})
    assert response.status_code == 400 and response.json()["code"] == "invalid_json"


async def test_after_bad_bodies_the_next_good_one_goes_through(client):
    for packed, encoding in [(bomb(8), "gzip"), (b"\x1f\x8b", "gzip"), (b"{}", "zstd")]:
        assert (await client.post("/v1/batch", content=packed,
                                  headers={"Content-Encoding": encoding, **segment_auth()})).status_code >= 400
    response = await client.post("/v1/batch", content=gzip.compress(batch("after")),
                                 headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200 and written(client) == ["after"]
    assert (await client.get("/healthz")).status_code == 200


async def test_mparticle_gzip_batch(client):
    body = {"events": [{"event_type": "custom_event", "data": {"event_name": "Viewed", "custom_event_type": "other",
                                                               "source_message_id": "mp-1"}}],
            "mpid": 42, "environment": "development"}
    response = await client.post("/v2/events", content=gzip.compress(json.dumps(body).encode()),
                                 headers={"Content-Encoding": "gzip"}, auth=MP_AUTH)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1 and response.json()["rejected"] == 0


def test_limit_is_checked_on_every_piece_of_output():
    inflater = BodyInflater("deflate", 100)
    with pytest.raises(RequestRejected) as raised:
        inflater.feed(deflate(b"a" * 101, raw=True))
    assert raised.value.status == 413
