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
