"""A started hub with the given webhook sources behind an in-process ASGI client, for source unit tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from personalize_hub.config import parse_config
from personalize_hub.ingest import build_app
from personalize_hub.runtime import Hub


@asynccontextmanager
async def webhook_client(tmp_path: Path, sources: list[dict]) -> AsyncIterator[httpx.AsyncClient]:
    """Events go to `tmp_path/out.jsonl`, the dead letter to `dlq.jsonl`; `client.tmp_path` names the folder.

    Source behaviour only: events pass through unstitched and unmapped, as in a hub forwarding to Kafka.
    """
    hub = Hub(parse_config({
        "sources": sources,
        "destinations": [{"type": "file", "id": "out", "path": str(tmp_path / "out.jsonl")}],
        "dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl")},
        "identity": {"enabled": False}, "mapping": {"enabled": False},
    }, {}))
    app = build_app(hub)
    await hub.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
            client.tmp_path = tmp_path
            yield client
    finally:
        await hub.stop()


def lines(path: Path) -> list[dict]:
    """A JSON Lines file's records (none if it does not exist yet)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
