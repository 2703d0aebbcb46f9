"""segment_webhook's /v1/webhook (Segment's Webhooks destinations), and no credential kept in a dead letter."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json

import pytest

from tests.unit.connectors.webhook_hub import lines, webhook_client

SECRETS = ["old-secret", "new-secret"]
WRITE_KEY = "wk-secret-value"


@pytest.fixture
async def client(tmp_path):
    async with webhook_client(tmp_path, [{"type": "segment_webhook", "id": "web", "write_keys": [WRITE_KEY], "shared_secrets": SECRETS}]) as c:
        yield c



def signed(body: bytes, secret: str) -> dict[str, str]:
    return {"X-Signature": hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
            "Content-Type": "application/json"}


def message(message_id: str, kind: str = "track") -> dict:
    fields = {"track": {"event": "Order Completed", "properties": {"product_id": "p1"}},
              "identify": {"traits": {"plan": "pro"}}, "page": {"name": "Home"}}[kind]
    return {"type": kind, "userId": "u1", "anonymousId": "a1", "messageId": message_id, **fields}


@pytest.mark.parametrize("secret", SECRETS)
async def test_one_signed_message(client, secret):
    body = json.dumps(message("m1")).encode()
    response = await client.post("/v1/webhook", content=body, headers=signed(body, secret))
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["rejected"]) == (1, 0)
    assert [e["source"]["message_id"] for e in lines(client.tmp_path / "out.jsonl")] == ["m1"]


async def test_signed_array_each_message_its_own_type_bad_one_rejected_alone(client):
    body = json.dumps([message("t1"), message("i1", "identify"), {"type": "track", "userId": "u1", "messageId": "bad"},
                       message("p1", "page")]).encode()
    response = await client.post("/v1/webhook", content=body, headers=signed(body, "new-secret"))
    assert response.status_code == 200
    assert (response.json()["accepted"], response.json()["rejected"]) == (3, 1)
    assert response.json()["errors"][0]["index"] == 2
    out = lines(client.tmp_path / "out.jsonl")
    assert [(e["source"]["message_id"], e["kind"]) for e in out] == [
        ("t1", "interaction"), ("i1", "identify"), ("p1", "interaction")]
    (dead,) = lines(client.tmp_path / "dlq.jsonl")
    assert dead["payload"]["messageId"] == "bad"


async def test_batched_body_signed_over_its_first_event_as_segment_does(client):
    """Webhooks (Actions) batching signs only the first event (support.twilio.com article 51193799782171)."""
    first = json.dumps(message("f1"), separators=(",", ":"))
    body = ("[ " + first + ",\n" + json.dumps(message("f2")) + "]").encode()
    response = await client.post("/v1/webhook", content=body, headers=signed(first.encode(), "new-secret"))
    assert response.status_code == 200 and response.json()["accepted"] == 2
    # The first member's signature on a body whose first member differs is refused.
    other = ("[" + json.dumps(message("x1")) + "," + first + "]").encode()
    response = await client.post("/v1/webhook", content=other, headers=signed(first.encode(), "new-secret"))
    assert response.status_code == 401


async def test_signature_is_over_the_body_as_sent_even_gzipped(client):
    packed = gzip.compress(json.dumps([message("g1")]).encode())
    response = await client.post("/v1/webhook", content=packed,
                                 headers={**signed(packed, "old-secret"), "Content-Encoding": "gzip"})
    assert response.status_code == 200 and response.json()["accepted"] == 1


@pytest.mark.parametrize("headers", [
    {},  # neither signature nor Basic
    {"X-Signature": "0" * 40},
    {"X-Signature": hmac.new(b"other", b"x", hashlib.sha1).hexdigest()},
    {"X-Signature": ""},
    {"Authorization": "Basic " + base64.b64encode(b"wrong:").decode()},
])
async def test_wrong_or_missing_signature_is_401_and_nothing_is_kept(client, headers):
    body = json.dumps(message("m1")).encode()
    response = await client.post("/v1/webhook", content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized" and response.json()["message"]
    assert lines(client.tmp_path / "out.jsonl") == [] and lines(client.tmp_path / "dlq.jsonl") == []


async def test_signature_of_another_body_is_401(client):
    body = json.dumps(message("m1")).encode()
    tampered = body.replace(b"u1", b"u2")
    response = await client.post("/v1/webhook", content=tampered, headers=signed(body, "new-secret"))
    assert response.status_code == 401


async def test_write_key_by_basic_auth_instead_of_a_signature(client):
    response = await client.post("/v1/webhook", json=[message("b1"), message("b2")], auth=(WRITE_KEY, ""))
    assert response.status_code == 200 and response.json()["accepted"] == 2


async def test_signature_without_configured_secrets_is_401(tmp_path):
    async with webhook_client(tmp_path, [{"type": "segment_webhook", "id": "web", "write_keys": [WRITE_KEY]}]) as c:
        body = json.dumps(message("m1")).encode()
        response = await c.post("/v1/webhook", content=body, headers=signed(body, "anything"))
    assert response.status_code == 401 and "no shared_secrets" in response.json()["message"]


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/track", {"type": "track", "userId": "u1", "messageId": "bad", "writeKey": WRITE_KEY}),
    ("/v1/batch", {"writeKey": WRITE_KEY, "batch": [{"type": "track", "userId": "u1", "messageId": "bad",
                                                     "writeKey": WRITE_KEY}]}),
])
async def test_dead_letter_keeps_no_write_key(client, path, body):
    response = await client.post(path, json=body)
    assert response.status_code == (400 if path == "/v1/track" else 200)
    dead = (client.tmp_path / "dlq.jsonl").read_text()
    assert json.loads(dead)["payload"]["messageId"] == "bad"
    assert WRITE_KEY not in dead and "writeKey" not in dead


async def test_error_bodies_carry_the_keys_sdks_read(client):
    """rudder-sdk-python and segment-analytics-python read `code` and `message` from any non-200 body."""
    response = await client.post("/v1/batch", content=b"{nope", auth=(WRITE_KEY, ""))
    assert response.status_code == 400
    assert set(response.json()) >= {"code", "message"} and response.json()["code"] == "invalid_json"
