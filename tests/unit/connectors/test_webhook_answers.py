"""Webhook answers the SDKs act on: transient conditions are 429/503 with Retry-After, errors carry code+message.

Read from the SDKs' own code: segment-analytics-python 2.4 and @segment/analytics-node 3.1 retry 408, 410, 429,
460 and 5xx but 501/505/511 and drop other 4xx; rudder-sdk-python 2.1 and @rudderstack/rudder-sdk-node 3.0 retry
429 and 5xx only. Both Python SDKs raise APIError(status, body["code"], body["message"]).
"""

from __future__ import annotations

import asyncio
import socket

import httpx
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from connectors.sources.webhook_http import RequestGate, RequestRejected
from personalize_hub.config import parse_config
from hub.errors import RetryableError
from personalize_hub.ingest import build_app
from personalize_hub.runtime import Hub

GOOD = {"type": "track", "event": "Product Viewed", "userId": "u1", "messageId": "good",
        "properties": {"product_id": "p1"}}
BAD = {"type": "track", "userId": "u1", "messageId": "bad"}


def hub_config(tmp_path, **identity) -> dict:
    return {
        "sources": [{"type": "segment_webhook", "id": "web", "write_keys": ["wk"]}],
        "destinations": [{"type": "file", "id": "out", "path": str(tmp_path / "out.jsonl")}],
        "dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl")},
        "identity": identity or {"enabled": False}, "mapping": {"enabled": False},
    }


async def post_batch(hub: Hub, body: dict) -> httpx.Response:
    transport = httpx.ASGITransport(app=build_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        return await client.post("/v1/batch", json=body, auth=("wk", ""))


def assert_retry_later(response: httpx.Response) -> None:
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json()["code"] == "unavailable" and response.json()["message"]


async def test_dead_letter_unavailable_is_503_not_a_drop(tmp_path, monkeypatch):
    hub = Hub(parse_config(hub_config(tmp_path), {}))
    await hub.start()

    async def broken(records):
        if records:
            raise RetryableError("dead letter unavailable: disk full")

    monkeypatch.setattr(hub.pipeline.dead_letter, "write", broken)
    try:
        assert_retry_later(await post_batch(hub, {"batch": [GOOD, BAD]}))
    finally:
        await hub.stop()


async def test_identity_store_down_is_503(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on: connections are refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    hub = Hub(parse_config(hub_config(tmp_path, store={"type": "redis", "url": f"redis://127.0.0.1:{port}"}), {}))
    await hub.start()
    try:
        assert_retry_later(await post_batch(hub, {"batch": [GOOD]}))
    finally:
        await hub.stop()


async def test_requests_beyond_the_in_flight_bound_are_429_with_retry_after():
    gate, release = RequestGate(max_in_flight=1), asyncio.Event()

    async def slow(request):
        await release.wait()
        return Response(b"done")

    async def rejecting(request):
        raise RequestRejected(400, "invalid_json", "body is not valid JSON")

    app = Starlette(routes=[Route("/slow", gate.endpoint(slow), methods=["POST"]),
                            Route("/bad", RequestGate(1).endpoint(rejecting), methods=["POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
        first = asyncio.create_task(client.post("/slow"))
        while gate.in_flight == 0:
            await asyncio.sleep(0)
        second = await client.post("/slow")
        assert second.status_code == 429 and second.headers["Retry-After"] == "1"
        assert second.json()["code"] == "overloaded"
        release.set()
        assert (await first).status_code == 200 and gate.in_flight == 0
        assert (await client.post("/slow")).status_code == 200
        bad = await client.post("/bad")
        assert bad.status_code == 400 and bad.json() == {
            "success": False, "code": "invalid_json", "reason": "invalid_json", "message": "body is not valid JSON"}
