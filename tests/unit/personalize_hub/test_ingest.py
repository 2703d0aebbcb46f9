"""The HTTP app's health endpoints: a source that dies makes the process unhealthy, not silently idle."""

from __future__ import annotations

import asyncio

import httpx

from personalize_hub.config import parse_config
from hub.connector import Context, Source, SourceConfig
from personalize_hub.ingest import build_app
from personalize_hub.runtime import Hub


class CrashingSource(Source):
    async def run(self, emit) -> None:
        raise ConnectionError("broker gone for good")


async def test_a_dead_source_turns_health_and_readiness_red(tmp_path):
    config = parse_config({"dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl")},
                           "identity": {"enabled": False}}, {})
    hub = Hub(config)
    app = build_app(hub)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
        hub.sources.append(CrashingSource(SourceConfig(id="kafka-in"), Context()))
        await hub.start()
        await asyncio.sleep(0.05)
        health = await client.get("/healthz")
        assert health.status_code == 503 and health.json()["failed_sources"] == ["kafka-in"]
        assert (await client.get("/readyz")).status_code == 503
        await hub.stop()


async def test_readiness_names_why_deliveries_fail(tmp_path, unused_tcp_port):
    # An engine nobody listens on: every send fails to connect, so /readyz turns 503 and says why.
    config = parse_config({
        "sources": [{"type": "segment_webhook", "id": "web", "write_keys": ["w" * 32]}],
        "destinations": [{"type": "personalize_events", "id": "events", "tracking_id": "t-1"}],
        "aws": {"personalize_endpoint_url": f"http://127.0.0.1:{unused_tcp_port}"},
        "dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl")},
        "retry": {"max_attempts": 2, "base_delay_secs": 0.01, "max_elapsed_secs": 1},
    }, {})
    hub = Hub(config)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(hub)), base_url="http://hub") as client:
        await hub.start()
        assert (await client.get("/readyz")).json() == {"ready": True}
        answer = await client.post("/v1/track", auth=("w" * 32, ""), json={
            "userId": "u1", "event": "Product Viewed", "properties": {"product_id": "p1"}})
        ready = await client.get("/readyz")
        await hub.stop()
    assert answer.status_code == 503
    assert ready.status_code == 503
    assert "connection failed" in ready.json()["failing_destinations"]["events"]
