"""Outbound webhooks signed per the Standard Webhooks spec: one POST per export, stable webhook-id."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import Field, SecretStr, field_validator

from connectors.destinations.http_delivery import http_client, raise_for_response, transport_failure
from connectors.destinations.public_network import PublicOnlyResolver, refuse_private_literal
from connectors.formats.lifecycle import LIFECYCLE, is_lifecycle
from connectors.formats.recommendations import (
    SEGMENT_AUDIENCE,
    USER_RECOMMENDATIONS,
    is_segment_audience,
)
from hub.connector import BatchPolicy, Context, ExportDestination, ExportDestinationConfig
from hub.errors import ConfigError, RejectedError
from hub.rows import ExportRow
from hub.secret import Secret

SECRET_PREFIX = "whsec_"
# Standard Webhooks: the secret is base64 of 24..64 random bytes after "whsec_"
# (docs/reference/webhooks.md#standard-webhooks).
SECRET_MIN_BYTES, SECRET_MAX_BYTES = 24, 64
# "Keep it < 20 KB: send a pointer (presigned S3 URL) for big batches" (docs/reference/webhooks.md#delivery-rules).
RECOMMENDED_MAX_PAYLOAD_BYTES = 20 * 1024


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret; ValueError saying what is wrong with it."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"the signing secret must start with {SECRET_PREFIX!r} (Standard Webhooks)")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except ValueError:
        raise ValueError("the signing secret is not base64 after 'whsec_'") from None
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        raise ValueError(f"the signing secret decodes to {len(key)} bytes; use {SECRET_MIN_BYTES}..{SECRET_MAX_BYTES}")
    return key


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body` (docs/reference/webhooks.md#standard-webhooks)."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class WebhookConfig(ExportDestinationConfig):
    """POSTs each export (one user's recommendations, or one item's audience) to your URL, signed.

    Headers follow Standard Webhooks: `webhook-id` is the export's message id, the same on every retry,
    so the receiver dedupes on it; `webhook-timestamp` is the attempt's Unix time; `webhook-signature`
    is `v1,<base64 HMAC-SHA256>` over `id.timestamp.body` with the `whsec_` secret. 2xx is delivered,
    410 rejects (the endpoint is gone), 429/502/503/504 back off honouring Retry-After.
    """

    type: Literal["webhook"]
    # The secret is the Standard Webhooks spec's own example value; use ${WEBHOOK_SECRET} in real configs.
    example: ClassVar[dict[str, Any]] = {
        "type": "webhook", "url": "https://example.com/hooks/recommendations",
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
    # One export per request keeps `webhook-id` one export's id on every retry; concurrency comes from
    # in-flight requests. Receivers' limits are unknown, so no rate is assumed: 429 adapts it.
    api_limits: ClassVar[BatchPolicy] = BatchPolicy(max_events=1, max_wait_secs=0.0, max_in_flight=16)

    url: str = Field(..., description="Receiver URL (https in production); redirects are not followed.")
    secret: Secret = Field(
        ..., description="Signing secret `whsec_<base64 of 24..64 random bytes>`, e.g. ${WEBHOOK_SECRET}."
    )
    event_type: str = Field("recommendations.updated", description="`type` of user payloads.")
    segment_event_type: str = Field("segment.updated", description="`type` of item-audience payloads.")
    max_payload_bytes: int = Field(
        RECOMMENDED_MAX_PAYLOAD_BYTES, ge=1024, le=10 * 1024 * 1024,
        description="Larger payloads are rejected; the spec suggests < 20 KB (docs/reference/webhooks.md#delivery-rules).",
    )
    allow_private_networks: bool = Field(
        False, description="Allow a URL resolving to loopback/private/link-local addresses (SSRF guard off).",
    )
    timeout_secs: float = Field(15.0, gt=0, le=30, description="Per-request timeout (15-30 s, docs/reference/webhooks.md#delivery-rules).")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http(s) URL with a host")
        return value

    @field_validator("secret")
    @classmethod
    def _valid_secret(cls, value: SecretStr) -> SecretStr:
        decode_secret(value.get_secret_value())
        return value


class Webhook(ExportDestination):
    """Standard Webhooks sender."""

    Config = WebhookConfig
    config: WebhookConfig
    idempotent = True  # the receiver dedupes on webhook-id, the same on every resend

    def __init__(self, config: WebhookConfig, context: Context, *, transport: httpx.AsyncBaseTransport | None = None,
                 clock: Any = time.time):
        super().__init__(config, context)
        self._key = decode_secret(config.secret.get_secret_value())
        self._transport = transport
        self._clock = clock
        self._client: httpx.AsyncClient | None = None

    export_rows = frozenset({USER_RECOMMENDATIONS, SEGMENT_AUDIENCE, LIFECYCLE})

    def partition_key(self, row: ExportRow) -> str:
        return row.message_id  # one request per export: every export may go concurrently

    async def start(self) -> None:
        if self._client is None:
            resolver = None
            if not self.config.allow_private_networks:
                # An IP literal is checked once; a name on every connection (PublicOnlyResolver), so one that
                # was unresolvable at start or changes its DNS later cannot reach a private network either.
                if (reason := refuse_private_literal(urlsplit(self.config.url).hostname or "")) is not None:
                    raise ConfigError([f"webhook url: {reason}"])
                resolver = PublicOnlyResolver()
            self._client = http_client("", {"Content-Type": "application/json"}, self.config.timeout_secs,
                                       self.config.batch_policy().max_in_flight, self._transport, resolver)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def payload(self, row: ExportRow) -> bytes:
        if row.record is None:
            raise RejectedError("invalid_export_record", "record is missing")
        kind = self.config.segment_event_type if is_segment_audience(row) else self.config.event_type
        data = row.record
        if is_lifecycle(row):  # a stage of the Personalize workflow: its own type, e.g. "gate.failed"
            kind, data = row.record["type"], row.record["data"]
        sent_at = datetime.fromtimestamp(row.timestamp, timezone.utc).isoformat().replace("+00:00", "Z")
        body = orjson.dumps({"type": kind, "timestamp": sent_at, "data": data})
        if len(body) > self.config.max_payload_bytes:
            raise RejectedError("payload_too_large",
                                f"{len(body)} bytes exceed max_payload_bytes={self.config.max_payload_bytes}")
        return body

    async def send(self, batch: Sequence[ExportRow]) -> None:
        await self.start()
        assert self._client is not None
        (row,) = batch  # max_events is 1: one webhook-id per request
        body = self.payload(row)
        timestamp = int(self._clock())
        headers = {"webhook-id": row.message_id, "webhook-timestamp": str(timestamp),
                   "webhook-signature": sign(self._key, row.message_id, timestamp, body)}
        try:
            response = await self._client.post(self.config.url, content=body, headers=headers)
        except httpx.TransportError as err:
            raise transport_failure(err) from err
        if response.status_code == 410:
            raise RejectedError("endpoint_gone", "the receiver answered 410 Gone: remove or fix this destination")
        raise_for_response(response, 1)
