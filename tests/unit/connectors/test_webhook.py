"""Webhook destination: Standard Webhooks headers checked by the reference verifier, statuses, guards."""

from __future__ import annotations

import base64
import os

import httpx
import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook as ReferenceVerifier
from standardwebhooks.webhooks import WebhookVerificationError

from connectors.destinations.webhook import Webhook, WebhookConfig
from hub.connector import Context, Outcome
from hub.errors import ConfigError, RejectedError, RetryableError
from tests.fixtures.exports import audience_event, deliver, export_event

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


class Receiver:
    def __init__(self, statuses=(200,), headers=None):
        self.statuses = list(statuses)
        self.headers = headers or {}
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return httpx.Response(status, headers=self.headers)


def webhook(receiver: Receiver, **config) -> Webhook:
    settings = WebhookConfig(type="webhook", url="https://hooks.example/recs", secret=SECRET, **config)
    return Webhook(settings, Context(), transport=httpx.MockTransport(receiver.handler))


def verify(request: httpx.Request) -> dict:
    return ReferenceVerifier(SECRET).verify(request.content, dict(request.headers))


async def test_signature_verifies_with_the_reference_implementation_and_id_is_the_export_id():
    receiver = Receiver()
    settlements = await deliver(webhook(receiver), [export_event("u1"), audience_event("i1", ["u1", "u2"])])
    assert {s.outcome for s in settlements} == {Outcome.DELIVERED}
    user, audience = sorted(receiver.requests, key=lambda r: r.headers["webhook-id"], reverse=True)
    assert user.headers["webhook-id"] == "weekly_email-20260105T060000:u1"
    payload = verify(user)
    assert payload["type"] == "recommendations.updated"
    assert payload["data"]["items"][0]["itemId"] == "i1" and payload["timestamp"].endswith("Z")
    assert verify(audience)["type"] == "segment.updated"
    tampered = httpx.Request("POST", "https://x", content=user.content.replace(b"i1", b"i9"), headers=user.headers)
    with pytest.raises(WebhookVerificationError):
        verify(tampered)


async def test_retries_keep_the_webhook_id_and_sign_each_attempt():
    receiver = Receiver(statuses=(503, 502, 200))
    (settlement,) = await deliver(webhook(receiver), [export_event("u1")])
    assert settlement.outcome is Outcome.DELIVERED and len(receiver.requests) == 3
    assert {r.headers["webhook-id"] for r in receiver.requests} == {"weekly_email-20260105T060000:u1"}
    for request in receiver.requests:
        verify(request)


@pytest.mark.parametrize(("status", "reason"), [
    (410, "endpoint_gone"), (400, "http_400"), (301, "redirect_not_followed"), (404, "not_found")])
async def test_refusals_are_rejected_with_a_reason(status, reason):
    receiver = Receiver(statuses=(status,), headers={"location": "https://elsewhere"})
    (settlement,) = await deliver(webhook(receiver), [export_event("u1")])
    assert (settlement.outcome, settlement.reason) == (Outcome.REJECTED, reason)
    assert len(receiver.requests) == 1


async def test_429_honours_retry_after():
    destination = webhook(Receiver(statuses=(429,), headers={"Retry-After": "3"}))
    with pytest.raises(RetryableError) as raised:
        await destination.send([export_event("u1")])
    assert raised.value.throttled and raised.value.retry_after_secs == 3.0


async def test_payloads_over_the_limit_are_rejected_before_sending():
    receiver = Receiver()
    with pytest.raises(RejectedError) as raised:
        await webhook(receiver, max_payload_bytes=1024).send([export_event("u1", [f"i{n}" for n in range(40)])])
    assert raised.value.reason == "payload_too_large" and receiver.requests == []


async def test_private_addresses_are_refused_unless_allowed():
    guarded = Webhook(WebhookConfig(type="webhook", url="http://127.0.0.1:9/hook", secret=SECRET), Context())
    with pytest.raises(ConfigError, match="allow_private_networks"):
        await guarded.start()
    allowed = Webhook(WebhookConfig(type="webhook", url="http://127.0.0.1:9/hook", secret=SECRET,
                                    allow_private_networks=True), Context())
    await allowed.start()
    await allowed.close()


@pytest.mark.parametrize("host", ["[fe80::1%25eth0]", "[fe80::1%25lo]", "[::ffff:127.0.0.1]", "[::1]", "0.0.0.0",
                                  "100.64.0.1", "169.254.169.254"])
async def test_non_public_ip_literals_are_refused_including_scoped_and_mapped_ipv6(host):
    guarded = Webhook(WebhookConfig(type="webhook", url=f"http://{host}:9/hook", secret=SECRET), Context())
    with pytest.raises(ConfigError, match="not a public address"):
        await guarded.start()


class LocalReceiver:
    """A real HTTP server on 127.0.0.1 counting requests (the private address a rebinding name points to)."""

    async def __aenter__(self):
        import asyncio

        self.requests = 0

        async def answer(reader, writer):
            self.requests += 1
            await reader.read(65536)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(answer, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()


async def test_a_name_is_checked_on_every_connection_not_only_at_start():
    async with LocalReceiver() as receiver:
        # localhost is a name: nothing to refuse at start, but each connection resolves it to loopback.
        guarded = Webhook(WebhookConfig(type="webhook", url=f"http://localhost:{receiver.port}/hook", secret=SECRET),
                          Context())
        await guarded.start()
        try:
            for _ in range(2):
                with pytest.raises(RetryableError, match="not a public address"):
                    await guarded.send([export_event("u1", ["i1"])])
        finally:
            await guarded.close()
        assert receiver.requests == 0
        allowed = Webhook(WebhookConfig(type="webhook", url=f"http://localhost:{receiver.port}/hook", secret=SECRET,
                                        allow_private_networks=True), Context())
        try:
            await allowed.send([export_event("u1", ["i1"])])
        finally:
            await allowed.close()
        assert receiver.requests == 1


async def test_a_name_unresolvable_at_start_that_later_resolves_private_is_refused():
    from aiohttp.abc import AbstractResolver

    from connectors.destinations.http_transport import AiohttpTransport
    from connectors.destinations.public_network import PublicOnlyResolver

    class Rebinding(AbstractResolver):  # DNS that fails first, then points at loopback
        calls = 0

        async def resolve(self, host, port=0, family=0):
            self.calls += 1
            if self.calls == 1:
                raise OSError("temporary failure in name resolution")
            return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": 2, "proto": 0, "flags": 0}]

        async def close(self):
            return None

    async with LocalReceiver() as receiver:
        transport = AiohttpTransport(4, resolver=PublicOnlyResolver(Rebinding()))
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(2):
                with pytest.raises(httpx.ConnectError):
                    await client.post(f"http://hooks.example:{receiver.port}/hook", content=b"{}")
        await transport.aclose()
        assert receiver.requests == 0


def test_secrets_must_be_standard_webhooks_secrets():
    for bad, message in [("plain", "must start with"), ("whsec_***", "not base64"),
                         ("whsec_" + base64.b64encode(b"short").decode(), "decodes to 5 bytes")]:
        with pytest.raises(ValidationError, match=message):
            WebhookConfig(type="webhook", url="https://h.example", secret=bad)
    assert Webhook.idempotent is True  # receivers dedupe on webhook-id
