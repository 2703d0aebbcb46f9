"""segment_webhook over ASGI: write-key auth, size limits, per-event rejection inside a batch."""

from __future__ import annotations

import base64

import pytest

from tests.unit.connectors.webhook_hub import lines, webhook_client


@pytest.fixture
async def client(tmp_path):
    source = {"type": "segment_webhook", "id": "web", "write_keys": ["old-key", "new-key"]}
    async with webhook_client(tmp_path, [source]) as c:
        yield c


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}



TRACK = {"type": "track", "event": "Product Viewed", "userId": "u1", "messageId": "m1", "properties": {"product_id": "p1"}}


async def test_batch_with_one_malformed_event_delivers_the_others(client):
    body = {"batch": [TRACK, {"type": "track", "userId": "u2", "messageId": "m2"}, {**TRACK, "messageId": "m3"}]}
    response = await client.post("/v1/batch", json=body, headers=basic("new-key"))
    assert response.status_code == 200
    assert response.json()["accepted"] == 2 and response.json()["rejected"] == 1
    assert response.json()["errors"][0] == {"index": 1, "reason": "missing_field",
                                            "message": "event: a track call needs an event name"}
    assert [e["source"]["message_id"] for e in lines(client.tmp_path / "out.jsonl")] == ["m1", "m3"]
    (dead,) = lines(client.tmp_path / "dlq.jsonl")
    assert dead["reason"] == "missing_field" and dead["payload"]["messageId"] == "m2"


@pytest.mark.parametrize("headers", [{}, basic("wrong"), {"Authorization": "Basic !!!"}, {"Authorization": "Bearer old-key"}])
async def test_wrong_or_missing_write_key_is_401(client, headers):
    response = await client.post("/v1/track", json=TRACK, headers=headers)
    assert response.status_code == 401 and response.json()["reason"] == "unauthorized"
    assert not (client.tmp_path / "out.jsonl").exists() or lines(client.tmp_path / "out.jsonl") == []


async def test_write_key_in_body_and_rotation(client):
    response = await client.post("/v1/track", json={**TRACK, "writeKey": "old-key"})
    assert response.status_code == 200 and response.json()["accepted"] == 1


async def test_single_call_with_bad_event_is_400_naming_the_field(client):
    response = await client.post("/v1/track", json={"userId": "u"}, headers=basic("new-key"))
    assert response.status_code == 400
    assert response.json()["reason"] == "missing_field" and "event" in response.json()["message"]


async def test_body_not_json_is_400(client):
    response = await client.post("/v1/batch", content=b"{nope", headers=basic("new-key"))
    assert response.status_code == 400 and response.json()["reason"] == "invalid_json"


async def test_size_limits_are_413(client):
    big = {**TRACK, "properties": {"blob": "x" * 33_000}}
    response = await client.post("/v1/track", json=big, headers=basic("new-key"))
    assert response.status_code == 413
    huge = {"batch": [{**TRACK, "messageId": f"m{i}", "properties": {"blob": "x" * 20_000}} for i in range(30)]}
    response = await client.post("/v1/batch", json=huge, headers=basic("new-key"))
    assert response.status_code == 413 and response.json()["reason"] == "body_too_large"


async def test_oversized_event_inside_a_batch_is_rejected_alone(client):
    body = {"batch": [TRACK, {**TRACK, "messageId": "big", "properties": {"blob": "x" * 40_000}}]}
    response = await client.post("/v1/import", json=body, headers=basic("new-key"))
    assert response.json()["accepted"] == 1
    assert response.json()["errors"][0]["reason"] == "event_too_large"


async def test_the_event_limit_counts_compact_json_whatever_the_whitespace_sent(client):
    import json

    padded = {**TRACK, "messageId": "padded", "properties": {"blob": "x" * 30_000}}  # fits compact, not as sent
    big = {**TRACK, "messageId": "big", "properties": {"blob": "x" * 33_000}}
    body = json.dumps({"batch": [TRACK, padded, big]}, indent=4000).encode()
    assert len(json.dumps(padded, indent=4000)) > 32 * 1024
    response = await client.post("/v1/batch", content=body,
                                 headers={**basic("new-key"), "Content-Type": "application/json"})
    assert response.json()["accepted"] == 2
    assert [(e["index"], e["reason"]) for e in response.json()["errors"]] == [(2, "event_too_large")]


async def test_health_and_metrics(client):
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).json() == {"ready": True}
    await client.post("/v1/track", json=TRACK, headers=basic("new-key"))
    assert 'hub_events_in_total{source="web"}' in (await client.get("/metrics")).text
