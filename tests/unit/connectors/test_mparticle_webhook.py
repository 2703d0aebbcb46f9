"""mparticle_webhook over ASGI: Basic key:secret, /v2/events and /v2/bulkevents, limits, bad events."""

from __future__ import annotations


import pytest

from connectors.sources import mparticle_webhook
from tests.unit.connectors.webhook_hub import lines, webhook_client

AUTH = ("mp-key", "mp-secret")


@pytest.fixture
async def client(tmp_path):
    async with webhook_client(tmp_path, [{"type": "mparticle_webhook", "id": "mp", "api_key": AUTH[0], "api_secret": AUTH[1]}]) as c:
        yield c



def view(message_id: str, product: str = "p1") -> dict:
    return {"event_type": "commerce_event", "data": {
        "source_message_id": message_id, "session_uuid": "S-1", "timestamp_unixtime_ms": 1_700_000_000_000,
        "product_action": {"action": "view_detail", "products": [{"id": product, "price": 3}]}}}


def batch(*events, mpid=1234567890123456789, **fields) -> dict:
    return {"mpid": mpid, "environment": "production", "user_identities": {"customer_id": "u1"},
            "events": list(events), **fields}


async def test_one_batch_with_a_bad_event_delivers_the_others_and_dead_letters_it(client):
    body = batch(view("m1"), {"event_type": "custom_event", "data": {"source_message_id": "bad"}}, view("m3"))
    response = await client.post("/v2/events", json=body, auth=AUTH)
    assert response.status_code == 202, response.text
    assert (response.json()["accepted"], response.json()["rejected"]) == (2, 1)
    assert response.json()["errors"] == [
        {"event": 1, "reason": "missing_field", "message": "data.event_name: required"}]
    out = lines(client.tmp_path / "out.jsonl")
    assert [e["source"]["message_id"] for e in out] == ["m1", "m3"]
    assert out[0]["anonymous_id"] == "1234567890123456789" and out[0]["session_id"] == "S-1"
    (dead,) = lines(client.tmp_path / "dlq.jsonl")
    assert (dead["reason"], dead["source"]["message_id"]) == ("missing_field", "bad")
    # Stored as a one-event batch with the batch's user and device: `hub replay` decodes it on its own.
    assert dead["payload"]["events"] == [body["events"][1]] and dead["payload"]["mpid"] == body["mpid"]


async def test_bulk_events_settle_each_batch_on_its_own(client):
    body = [batch(view("a")), batch(view("b"), mpid=0.5), batch(view("c"), user_attributes={"tier": "gold"})]
    response = await client.post("/v2/bulkevents", json=body, auth=AUTH)
    assert response.status_code == 202, response.text
    assert response.json()["errors"] == [
        {"batch": 1, "reason": "invalid_id", "message": "mpid: expected a 64-bit integer, got 0.5 (float)"}]
    out = lines(client.tmp_path / "out.jsonl")
    assert sorted(e["source"]["message_id"] for e in out if e["kind"] == "interaction") == ["a", "c"]
    (identify,) = [e for e in out if e["kind"] == "identify"]
    assert identify["traits"] == {"tier": "gold"} and identify["user_id"] == "u1"
    (dead,) = lines(client.tmp_path / "dlq.jsonl")
    assert dead["payload"] == body[1]


async def test_a_single_batch_unusable_as_a_whole_is_400(client):
    response = await client.post("/v2/events", json=batch(view("x"), mpid="twelve"), auth=AUTH)
    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_id"
    assert lines(client.tmp_path / "dlq.jsonl")[0]["reason"] == "invalid_id"


@pytest.mark.parametrize("auth", [None, ("mp-key", "wrong"), ("wrong", "mp-secret"), ("mp-secret", "mp-key")])
async def test_wrong_or_missing_credentials_are_401(client, auth):
    response = await client.post("/v2/events", json=batch(view("m")), auth=auth)
    assert response.status_code == 401 and response.json()["reason"] == "unauthorized"
    assert lines(client.tmp_path / "out.jsonl") == []


@pytest.mark.parametrize("path", ["/v2/events", "/v2/bulkevents"])
async def test_body_not_json_or_of_the_wrong_shape_is_400(client, path):
    response = await client.post(path, content=b"{nope", auth=AUTH)
    assert response.status_code == 400 and response.json()["reason"] == "invalid_json"
    wrong_shape = batch(view("m")) if path.endswith("bulkevents") else [batch(view("m"))]
    response = await client.post(path, json=wrong_shape, auth=AUTH)
    assert response.status_code == 400 and response.json()["reason"] == "invalid_type"


async def test_limits_are_413(client):
    big = batch(view("m"), user_attributes={"blob": "x" * mparticle_webhook.MAX_BATCH_BYTES})
    response = await client.post("/v2/events", json=big, auth=AUTH)
    assert response.status_code == 413 and response.json()["reason"] == "body_too_large"

    too_many = [batch(view(f"m{i}")) for i in range(mparticle_webhook.MAX_BULK_BATCHES + 1)]
    response = await client.post("/v2/bulkevents", json=too_many, auth=AUTH)
    assert response.status_code == 413 and response.json()["reason"] == "too_many_batches"

    response = await client.post("/v2/bulkevents", json=[big, big], auth=AUTH)
    assert response.status_code == 413 and response.json()["reason"] == "body_too_large"
    assert lines(client.tmp_path / "out.jsonl") == []


async def test_a_batch_over_its_own_limit_inside_a_bulk_request_is_rejected_alone(client):
    heavy = batch(view("heavy"), user_attributes={"blob": "x" * (mparticle_webhook.MAX_BATCH_BYTES - 1000)})
    heavy["user_attributes"]["more"] = "y" * 2000
    response = await client.post("/v2/bulkevents", json=[batch(view("light")), heavy], auth=AUTH)
    assert response.status_code == 202, response.text
    assert response.json()["errors"][0]["reason"] == "batch_too_large"
    assert [e["source"]["message_id"] for e in lines(client.tmp_path / "out.jsonl")] == ["light"]
