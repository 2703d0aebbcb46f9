"""The ASGI app's wire format: dispatch, error shape and headers (docs/reference/personalize-api.md#wire-protocols, #error-responses), in process."""

from __future__ import annotations

import httpx
import pytest

from local_personalize.app import LocalPersonalize
from local_personalize.settings import Settings

JSON_11 = "application/x-amz-json-1.1"


@pytest.fixture
async def client(tmp_path):
    app = LocalPersonalize(Settings(data_dir=tmp_path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lp") as http:
        yield http
    await app.service.shutdown()


def control(operation: str) -> dict[str, str]:
    return {"X-Amz-Target": f"AmazonPersonalize.{operation}", "Content-Type": JSON_11}


async def test_control_plane_success_and_error_shapes(client):
    created = await client.post("/", json={"name": "shop"}, headers=control("CreateDatasetGroup"))
    assert created.status_code == 200
    assert created.headers["content-type"] == JSON_11
    assert len(created.headers["x-amzn-requestid"]) == 36
    assert created.json()["datasetGroupArn"].endswith(":dataset-group/shop")
    again = await client.post("/", json={"name": "shop"}, headers=control("CreateDatasetGroup"))
    assert again.status_code == 400
    assert again.headers["x-amzn-errortype"] == "ResourceAlreadyExistsException"
    assert again.json()["__type"] == "ResourceAlreadyExistsException" and again.json()["message"]


async def test_rest_json_errors_carry_their_modeled_status(client):
    missing = await client.post("/events", json={"trackingId": "nope", "sessionId": "s", "eventList": [
        {"eventType": "click", "itemId": "i", "sentAt": 1}]})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert missing.headers["x-amzn-errortype"] == "ResourceNotFoundException"
    bad = await client.post("/recommendations", json={"campaignArn": "x"})
    assert (bad.status_code, bad.json()["__type"]) == (400, "InvalidInputException")


@pytest.mark.parametrize("method, path, headers, body", [
    ("POST", "/nowhere", {}, b"{}"),
    ("GET", "/events", {}, b""),
    ("POST", "/", control("DescribeNothing"), b"{}"),
    ("POST", "/", {"X-Amz-Target": "SomethingElse.CreateDatasetGroup"}, b"{}"),
])
async def test_unknown_operations(client, method, path, headers, body):
    answer = await client.request(method, path, headers=headers, content=body)
    assert answer.status_code == 400
    assert answer.json()["__type"] == "UnknownOperationException"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]"])
async def test_bodies_that_are_not_json_objects(client, body):
    answer = await client.post("/", content=body, headers=control("ListDatasetGroups"))
    assert (answer.status_code, answer.json()["__type"]) == (400, "InvalidInputException")


async def test_events_answer_an_empty_body_and_health_is_constant(client):
    assert (await client.get("/ping")).json()["status"] == "ok"
    listed = await client.post("/", content=b"", headers=control("ListDatasetGroups"))
    assert listed.json() == {"datasetGroups": []}
