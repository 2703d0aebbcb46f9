"""RudderStack on segment_webhook: the SDKs' /v1/batch (gzip, their headers and fields) and the Webhook destination.

Shapes as the SDKs build them (rudder-sdk-python 2.1 request.py/client.py, @rudderstack/rudder-sdk-node 3.0
index.js) and as RudderStack's Webhook destination posts an event: unmodified, one per POST, with
`user-agent: RudderLabs` and the custom headers configured (rudderstack.com/docs/destinations/webhooks/setup-guide).
"""

from __future__ import annotations

import base64
import gzip
import json

import httpx
import pytest

from personalize_hub.config import parse_config
from personalize_hub.ingest import build_app
from personalize_hub.runtime import Hub

WRITE_KEY = "rudder-write-key"


@pytest.fixture
async def client(tmp_path):
    config = parse_config({
        "sources": [{"type": "segment_webhook", "id": "rudder", "write_keys": [WRITE_KEY]}],
        "destinations": [{"type": "file", "id": "out", "path": str(tmp_path / "out.jsonl")}],
        "dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl")},
        "identity": {"enabled": False}, "mapping": {"enabled": False},
    }, {})
    hub = Hub(config)
    await hub.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(hub)), base_url="http://hub") as c:
        c.tmp_path = tmp_path
        yield c
    await hub.stop()


def delivered(client) -> list[dict]:
    path = client.tmp_path / "out.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def basic() -> str:
    return "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()


async def test_node_sdk_batch(client):
    messages = [
        {"type": "track", "event": "Product Viewed", "anonymousId": "anon-1", "properties": {"product_id": "p1"},
         "context": {"library": {"name": "analytics-node", "version": "3.0.13"}}, "channel": "server",
         "_metadata": {"nodeVersion": "20.11.0"}, "originalTimestamp": "2026-12-04T05:00:00.000Z",
         "messageId": "n1", "sentAt": "2026-12-04T05:00:01.000Z"},
        {"type": "identify", "userId": "u1", "anonymousId": "anon-1", "traits": {"plan": "pro"}, "channel": "server",
         "_metadata": {"nodeVersion": "20.11.0"}, "originalTimestamp": "2026-12-04T05:00:00.500Z",
         "messageId": "n2", "sentAt": "2026-12-04T05:00:01.000Z"},
    ]
    body = gzip.compress(json.dumps({"batch": messages, "sentAt": "2026-12-04T05:00:01.000Z"}).encode())
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json", "Authorization": basic(),
               "AnonymousId": base64.b64encode(b"anon-1").decode(), "user-agent": "analytics-node/3.0.13"}
    response = await client.post("/v1/batch", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["rejected"]) == (2, 0)
    assert [e["source"]["message_id"] for e in delivered(client)] == ["n1", "n2"]


async def test_python_sdk_batch(client):
    messages = [{"type": "track", "event": "Order Completed", "userId": "u1", "anonymousId": None,
                 "properties": {"products": [{"product_id": "p1"}, {"product_id": "p2"}]},
                 "integrations": {"All": True}, "context": {"library": {"name": "analytics-python", "version": "2.1.9"}},
                 "timestamp": "2026-12-04T05:00:00+00:00", "messageId": "py1", "channel": "analytics-python-sdk"}]
    body = gzip.compress(json.dumps({"batch": messages, "sentAt": "2026-12-04T05:00:01+00:00"}).encode(), 9)
    response = await client.post("/v1/batch", content=body, auth=(WRITE_KEY, ""),
                                 headers={"Content-Encoding": "gzip", "Content-Type": "application/json",
                                          "User-Agent": "analytics-python/2.1.9"})
    assert response.status_code == 200 and response.json()["accepted"] == 1


async def test_webhook_destination_posts_one_event(client):
    event = {"anonymousId": "anon-7", "channel": "web", "context": {"library": {"name": "RudderLabs JavaScript SDK"},
             "page": {"path": "/p/1"}}, "event": "Product Added", "messageId": "rw1",
             "originalTimestamp": "2026-12-04T05:00:00.000Z", "properties": {"product_id": "p7"},
             "receivedAt": "2026-12-04T05:00:01.100+00:00", "request_ip": "203.0.113.7", "rudderId": "b1f5",
             "sentAt": "2026-12-04T05:00:01.000Z", "timestamp": "2026-12-04T05:00:00.100+00:00", "type": "track",
             "userId": ""}
    response = await client.post("/v1/webhook", json=event,
                                 headers={"user-agent": "RudderLabs", "Authorization": basic()})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    (written,) = delivered(client)
    assert written["source"]["message_id"] == "rw1" and written["anonymous_id"] == "anon-7"
