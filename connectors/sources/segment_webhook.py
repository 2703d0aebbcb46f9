"""Segment's HTTP Tracking API as a webhook: /v1/track|…|batch|import, and /v1/webhook for Segment's cloud."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import msgspec
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.formats import segment
from connectors.sources import webhook_signature
from connectors.sources.webhook_http import (
    RequestGate,
    RequestRejected,
    WebhookSourceConfig,
    basic_credentials,
    error_response,
    matches_any,
    parse_json,
    read_body,
    settlement_response,
)
from hub.connector import Emit, Outcome, WebhookSource
from hub.errors import RejectedError
from hub.events import Event, Rejection, SourceRef
from hub.secret import Secret

# Segment HTTP API limits (segment-docs http-api/index.md; docs/reference/segment.md#limits): 32 KB per call or event,
# 500 KB per batch request. They bound the inflated body when it arrives compressed.
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
# Body keys that carry a credential: taken out before anything is decoded, dead-lettered or shown.
CREDENTIAL_KEYS = ("writeKey",)


class SegmentWebhookConfig(WebhookSourceConfig):
    """Receives Segment SDK or server traffic at the Tracking API's own paths."""

    type: Literal["segment_webhook"]
    example = {"type": "segment_webhook", "id": "web", "write_keys": ["${SEGMENT_WRITE_KEY}"]}
    write_keys: list[Secret] = Field(
        ..., min_length=1, description="Accepted write keys (several allow rotation); from the environment."
    )
    shared_secrets: list[Secret] = Field(
        [], description="Shared secrets of Segment's Webhooks destinations: POST {path_prefix}/webhook must carry "
                        "X-Signature, the hex HMAC-SHA1 of the body as sent, with one of them (several allow "
                        "rotation), or the write key by HTTP Basic; from the environment.",
    )
    path_prefix: str = Field(
        "/v1", description="Mount point of the Tracking API paths. Body limits (after gzip/deflate inflation): "
                           "32 KB for /track, /identify, /page, /screen, /group, /alias and per event; 500 KB for "
                           "/batch, /import and /webhook.",
    )


class SegmentWebhook(WebhookSource):
    """Segment Tracking API (write key by Basic or `writeKey`) and Segment's signed Webhooks; gzip/deflate bodies."""

    Config = SegmentWebhookConfig
    config: SegmentWebhookConfig

    def routes(self, emit: Emit) -> list[Route]:
        prefix = self.config.path_prefix.rstrip("/")
        gate = RequestGate(self.config.max_requests_in_flight)

        def call_endpoint(call: str | None, max_bytes: int):
            return gate.endpoint(lambda request: self._handle(request, emit, call, max_bytes))

        routes = [Route(f"{prefix}/{call}", call_endpoint(call, MAX_EVENT_BYTES), methods=["POST"])
                  for call in segment.CALLS]
        routes += [Route(f"{prefix}/{path}", call_endpoint(None, MAX_BATCH_BYTES), methods=["POST"])
                   for path in ("batch", "import")]
        webhook = gate.endpoint(lambda request: self._handle_webhook(request, emit))
        return [*routes, Route(f"{prefix}/webhook", webhook, methods=["POST"])]

    def decode(self, payload: Any, source: SourceRef) -> list[Event]:
        event = segment.decode_message(payload, source_id=self.config.id, request_id=source.request_id,
                                       call=source.call)
        return [] if event is None else [event]

    def _check_write_key(self, candidate: object) -> None:
        if not isinstance(candidate, str):
            raise RequestRejected(401, "unauthorized", "a write key is required (HTTP Basic or writeKey)")
        if not matches_any(candidate, (k.get_secret_value() for k in self.config.write_keys)):
            raise RequestRejected(401, "unauthorized", "unknown write key")

    async def _handle(self, request: Request, emit: Emit, call: str | None, max_bytes: int) -> Response:
        received_at = time.time()
        credentials = basic_credentials(request)
        if credentials is not None:  # header auth is checked before the body is even read
            self._check_write_key(credentials[0])
        raw_body = await read_body(request, max_bytes)
        body = parse_json(raw_body)
        body_key = _strip_credentials(body)
        if credentials is None:
            self._check_write_key(body_key)
        if not isinstance(body, dict):
            raise RequestRejected(400, "invalid_type", "body: expected a JSON object")
        if call is None:
            messages = body.get("batch")
            if not isinstance(messages, list):
                raise RequestRejected(400, "missing_field", "batch: expected a list of messages")
            batch_context = body.get("context") if isinstance(body.get("context"), dict) else None
        else:
            messages, batch_context = [body], None
        return await self._settle(request, emit, messages, call, batch_context, raw_body, received_at)

    async def _handle_webhook(self, request: Request, emit: Emit) -> Response:
        """Segment's Webhooks / Webhooks (Actions) destinations: one message, or a JSON array of them when
        batching; each message's own `type` decides the call."""
        received_at = time.time()
        signature = request.headers.get(webhook_signature.HEADER)
        if signature is None:
            credentials = basic_credentials(request)
            if credentials is None:
                raise RequestRejected(401, "unauthorized", "X-Signature or the write key by HTTP Basic is required")
            self._check_write_key(credentials[0])
        signer = webhook_signature.BodySignature([s.get_secret_value() for s in self.config.shared_secrets])
        raw_body = await read_body(request, MAX_BATCH_BYTES, on_wire=signer.update if signature is not None else None)
        if signature is not None:
            signer.verify(signature, raw_body)
        body = parse_json(raw_body)
        messages = body if isinstance(body, list) else [body]
        return await self._settle(request, emit, messages, None, None, raw_body, received_at)

    async def _settle(
        self, request: Request, emit: Emit, messages: list, call: str | None,
        batch_context: dict | None, raw_body: bytes, received_at: float,
    ) -> Response:
        """Decode each message, reject bad ones alone, emit, answer: counts for a batch, 400 for a bad single call."""
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        # No member can exceed the limit when the body does not; else only those whose bytes as sent do.
        sizes = _sent_sizes(raw_body, len(messages)) if call is None and len(raw_body) > MAX_EVENT_BYTES else None
        events: list[Event] = []
        rejected: list[tuple[int, Rejection]] = []
        for index, message in enumerate(messages):
            try:
                if (sizes is not None and (sizes[index] is None or sizes[index] > MAX_EVENT_BYTES)  # type: ignore[operator]
                        and segment.encoded_size(message) > MAX_EVENT_BYTES):
                    raise RejectedError("event_too_large", f"batch[{index}]: exceeds {MAX_EVENT_BYTES} bytes")
                if call is None:
                    _strip_credentials(message)  # some SDKs repeat the write key in every message
                event = segment.decode_message(
                    message, source_id=self.config.id, request_id=request_id, call=call,
                    batch_context=batch_context, received_at=received_at,
                )
            except RejectedError as err:
                source = SourceRef(source_id=self.config.id, message_id=_message_id(message, request_id, index),
                                   request_id=request_id, call=call)
                rejected.append((index, Rejection(source=source, reason=err.reason, message=err.message, raw=message)))
                continue
            if event is not None:
                events.append(event)

        report = await emit(events, [r for _, r in rejected])
        if call is not None and report.outcome is not Outcome.RETRY and (rejected or report.rejected):
            first = (rejected[0][1] if rejected else report.rejections[0])
            return error_response(RequestRejected(400, first.reason, first.message))
        return settlement_response(report, len(messages), rejected)


class _RawBatch(msgspec.Struct):
    batch: list[msgspec.Raw]


def _sent_sizes(body: bytes, count: int) -> list[int | None]:
    """Each message's length as sent, or None where it cannot be told (then its compact size is computed).

    Compact JSON is never longer than the message as sent, so a message whose sent bytes fit the limit fits
    it: only the rare longer ones pay for an encoding of their own (per message, that was a tenth of the
    request's CPU).
    """
    for shape in (_RawBatch, list[msgspec.Raw]):  # /batch and /import: {"batch": [...]}; /webhook: [...]
        try:
            decoded = msgspec.json.decode(body, type=shape)
        except (msgspec.DecodeError, RecursionError):
            continue
        raws = decoded.batch if isinstance(decoded, _RawBatch) else decoded
        if len(raws) == count:
            return [len(raw) for raw in raws]
    return [None] * count


def _strip_credentials(body: object) -> object:
    """Removes credential keys from a JSON object in place, so no raw payload stored or shown keeps them;
    returns the write key it held, if any."""
    if not isinstance(body, dict):
        return None
    found = [body.pop(key, None) for key in CREDENTIAL_KEYS]
    return found[0]


def _message_id(message: object, request_id: str, index: int) -> str:
    if isinstance(message, dict) and isinstance(message.get("messageId"), str):
        return message["messageId"]
    return f"{request_id}:{index}"
