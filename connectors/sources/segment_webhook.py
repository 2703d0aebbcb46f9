"""Segment's HTTP Tracking API as a webhook: /v1/track|identify|page|screen|group|alias|batch|import."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.formats import segment
from connectors.sources.webhook_http import (
    RequestRejected,
    basic_credentials,
    error_response,
    matches_any,
    parse_json,
    read_body,
    settlement_response,
)
from hub.connector import Emit, Outcome, SourceConfig, WebhookSource
from hub.errors import RejectedError
from hub.events import Event, Rejection, SourceRef
from hub.secret import Secret

# Segment HTTP API limits (segment-docs http-api/index.md; peers.md §2.1): 32 KB per call or event,
# 500 KB per batch request.
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024


class SegmentWebhookConfig(SourceConfig):
    """Receives Segment SDK or server traffic at the Tracking API's own paths."""

    type: Literal["segment_webhook"]
    example = {"type": "segment_webhook", "id": "web", "write_keys": ["${SEGMENT_WRITE_KEY}"]}
    write_keys: list[Secret] = Field(
        ..., min_length=1, description="Accepted write keys (several allow rotation); from the environment."
    )
    path_prefix: str = Field("/v1", description="Mount point of the Tracking API paths.")


class SegmentWebhook(WebhookSource):
    """Segment Tracking API webhook: write key by HTTP Basic or the `writeKey` body field."""

    Config = SegmentWebhookConfig
    config: SegmentWebhookConfig

    def routes(self, emit: Emit) -> list[Route]:
        prefix = self.config.path_prefix.rstrip("/")

        def handler(call: str | None, max_bytes: int):
            async def endpoint(request: Request) -> Response:
                try:
                    return await self._handle(request, emit, call, max_bytes)
                except RequestRejected as err:
                    return error_response(err)

            return endpoint

        routes = [Route(f"{prefix}/{call}", handler(call, MAX_EVENT_BYTES), methods=["POST"]) for call in segment.CALLS]
        routes += [Route(f"{prefix}/{path}", handler(None, MAX_BATCH_BYTES), methods=["POST"]) for path in ("batch", "import")]
        return routes

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
        if credentials is None:
            self._check_write_key(body.get("writeKey") if isinstance(body, dict) else None)
        if not isinstance(body, dict):
            raise RequestRejected(400, "invalid_type", "body: expected a JSON object")
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        if call is None:
            messages = body.get("batch")
            if not isinstance(messages, list):
                raise RequestRejected(400, "missing_field", "batch: expected a list of messages")
            batch_context = body.get("context") if isinstance(body.get("context"), dict) else None
            check_sizes = len(raw_body) > MAX_EVENT_BYTES  # no member can exceed the limit otherwise
        else:
            messages, batch_context, check_sizes = [body], None, False

        events: list[Event] = []
        rejected: list[tuple[int, Rejection]] = []
        for index, message in enumerate(messages):
            try:
                if check_sizes and segment.encoded_size(message) > MAX_EVENT_BYTES:
                    raise RejectedError("event_too_large", f"batch[{index}]: exceeds {MAX_EVENT_BYTES} bytes")
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


def _message_id(message: object, request_id: str, index: int) -> str:
    if isinstance(message, dict) and isinstance(message.get("messageId"), str):
        return message["messageId"]
    return f"{request_id}:{index}"
