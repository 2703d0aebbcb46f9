"""Shared fixtures for the Personalize destination unit tests: fixed credentials, a capturing stub, fakes."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import botocore.auth
import pytest
from aiohttp import web

from connectors.destinations.personalize.unit import PersonalizeRecord
from hub.events import Event, EventKind, SourceRef

FROZEN_NOW = datetime.datetime(2026, 1, 2, 3, 4, 5)  # naive UTC, as botocore's get_current_datetime returns


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> dict[str, str]:
    """Credentials from the environment only (the chain stops there), never a developer's own files."""
    values = {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "AWS_SESSION_TOKEN": "session-token-example",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> datetime.datetime:
    """Freeze the SigV4 signing time, so two signers given the same request must agree to the byte."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda remove_tzinfo=True: FROZEN_NOW)
    return FROZEN_NOW


@dataclass
class CapturedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass
class StubServer:
    """An HTTP server on loopback that records every request and answers what `answer` says."""

    url: str = ""
    requests: list[CapturedRequest] = field(default_factory=list)
    answer: Callable[[CapturedRequest], tuple[int, Mapping[str, str], bytes]] = lambda r: (200, {}, b"")


@pytest.fixture
async def stub_server() -> Any:
    stub = StubServer()

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        headers = {name.lower(): value for name, value in request.headers.items()}
        captured = CapturedRequest(request.method, request.path_qs, headers, await request.read())
        stub.requests.append(captured)
        status, answer_headers, body = stub.answer(captured)
        return web.Response(status=status, headers=dict(answer_headers), body=body)

    server = web.Server(handle)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stub.url = f"http://127.0.0.1:{port}"
    yield stub
    await runner.cleanup()


class FakeIngestApi:
    """Stands in for a request path: records each call; `script(operation, params, call)` may return an error."""

    def __init__(self, script: Callable[[str, Mapping[str, Any], int], BaseException | None] | None = None):
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.script = script or (lambda operation, params, call: None)

    async def call(self, operation: str, params: Mapping[str, Any]) -> None:
        self.calls.append((operation, dict(params)))
        error = self.script(operation, params, len(self.calls))
        if error is not None:
            raise error


def interaction(message_id: str, *, session: str | None = "s1", user: str | None = "u1", item: str = "i1",
                sent_at: float = 1_704_067_200.5, **record: Any) -> PersonalizeRecord:
    """An interaction as it reaches a Personalize destination's send: identity stitched, record encoded."""
    event = Event(
        kind=EventKind.INTERACTION,
        source=SourceRef(source_id="test", message_id=message_id),
        timestamp=sent_at,
        name="Product Viewed",
        user_id=user,
        session_id=session,
    )
    body = {"eventId": message_id, "eventType": "Product Viewed", "sentAt": sent_at, "itemId": item, **record}
    return PersonalizeRecord(event, event.source, EventKind.INTERACTION, body)


def catalog_record(message_id: str, record_id: str, kind: EventKind = EventKind.ITEM,
                   **properties: Any) -> PersonalizeRecord:
    """An ITEM (or USER) record as PutItems (PutUsers) takes it."""
    id_key = "itemId" if kind is EventKind.ITEM else "userId"
    record: dict[str, Any] = {id_key: record_id, "properties": json.dumps(properties or {"price": "1"})}
    event = Event(kind=kind, source=SourceRef(source_id="test", message_id=message_id), timestamp=1_704_067_200.0)
    return PersonalizeRecord(event, event.source, kind, record)

