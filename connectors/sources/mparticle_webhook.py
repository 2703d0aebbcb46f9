"""mParticle's server-to-server Events API as a webhook: POST /v2/events and /v2/bulkevents."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import msgspec
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.formats import mparticle
from connectors.sources.webhook_http import (
    RequestGate,
    RequestRejected,
    WebhookSourceConfig,
    basic_credentials,
    error_response,
    json_response,
    matches_any,
    parse_json,
    read_body,
    retry_later_response,
)
from hub.connector import Emit, EmitReport, Outcome, WebhookSource
from hub.errors import RejectedError
from hub.events import Event, Rejection, SourceRef
from hub.secret import Secret

# mParticle Events API limits (docs.mparticle.com/guides/default-service-limits/): 256 KB per request,
# 128 KB per event batch, 100 batches per /bulkevents request.
MAX_REQUEST_BYTES = 256 * 1024
MAX_BATCH_BYTES = 128 * 1024
MAX_BULK_BATCHES = 100


class MparticleWebhookConfig(WebhookSourceConfig):
    """Receives mParticle event batches (server SDKs, the Events API format) at the API's own paths."""

    type: Literal["mparticle_webhook"]
    example = {"type": "mparticle_webhook", "id": "mparticle", "api_key": "${MPARTICLE_API_KEY}",
               "api_secret": "${MPARTICLE_API_SECRET}"}
    api_key: Secret = Field(..., description="Key half of the HTTP Basic credentials; from the environment.")
    api_secret: Secret = Field(..., description="Secret half of the HTTP Basic credentials; from the environment.")
    path_prefix: str = Field(
        "/v2", description="Mount point of /events and /bulkevents. Body limits (after gzip/deflate inflation): "
                           "128 KB for /events, 256 KB and 100 batches for /bulkevents.",
    )
    user_id_identity: str = Field(
        "customer_id",
        description="The user_identities entry that is the Personalize user id (`customerid` is accepted for "
                    "customer_id); the mpid is then the anonymous id. `mpid` uses the mpid as the user id.",
    )


class MparticleWebhook(WebhookSource):
    """mParticle Events API and Webhook output (same batch format): HTTP Basic key:secret; gzip/deflate bodies;
    answers 202 once every event settled."""

    Config = MparticleWebhookConfig
    config: MparticleWebhookConfig

    def decode(self, payload: Any, source: SourceRef) -> list[Event]:
        """A dead-lettered batch (whole, or the one-event batch a rejected event was stored as) decoded again."""
        events, rejections = mparticle.decode_batch(
            payload, source_id=self.config.id, request_id=source.request_id,
            user_id_identity=self.config.user_id_identity,
        )
        if rejections:
            first = rejections[0][1]
            raise RejectedError(first.reason, first.message)
        return events

    def routes(self, emit: Emit) -> list[Route]:
        prefix = self.config.path_prefix.rstrip("/")
        gate = RequestGate(self.config.max_requests_in_flight)
        return [
            Route(f"{prefix}/events", gate.endpoint(lambda r: self._handle(r, emit, False)), methods=["POST"]),
            Route(f"{prefix}/bulkevents", gate.endpoint(lambda r: self._handle(r, emit, True)), methods=["POST"]),
        ]

    def _authorise(self, request: Request) -> None:
        credentials = basic_credentials(request)
        if credentials is None:
            raise RequestRejected(401, "unauthorized", "HTTP Basic credentials (key:secret) are required")
        key, secret = credentials
        # Both halves are compared in full, whatever the first one gave: no timing hint on which was wrong.
        key_ok = matches_any(key, [self.config.api_key.get_secret_value()])
        secret_ok = matches_any(secret, [self.config.api_secret.get_secret_value()])
        if not (key_ok & secret_ok):
            raise RequestRejected(401, "unauthorized", "unknown key or secret")

    async def _handle(self, request: Request, emit: Emit, bulk: bool) -> Response:
        received_at = time.time()
        self._authorise(request)  # before the body is even read
        raw_body = await read_body(request, MAX_REQUEST_BYTES if bulk else MAX_BATCH_BYTES)
        body = parse_json(raw_body)
        if bulk:
            if not isinstance(body, list):
                raise RequestRejected(400, "invalid_type", "body: expected a JSON array of event batches")
            if len(body) > MAX_BULK_BATCHES:
                raise RequestRejected(
                    413, "too_many_batches", f"body: {len(body)} batches exceed the limit of {MAX_BULK_BATCHES}"
                )
            batches = body
        else:
            if not isinstance(body, dict):
                raise RequestRejected(400, "invalid_type", "body: expected a JSON object (one event batch)")
            batches = [body]
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        check_sizes = bulk and len(raw_body) > MAX_BATCH_BYTES  # no batch can exceed the limit otherwise

        events: list[Event] = []
        rejected: list[tuple[int, int | None, Rejection]] = []
        for position, batch in enumerate(batches):
            if check_sizes and len(msgspec.json.encode(batch)) > MAX_BATCH_BYTES:
                source = SourceRef(source_id=self.config.id, message_id=f"{request_id}:{position}",
                                   request_id=request_id)
                message = f"[{position}]: batch exceeds {MAX_BATCH_BYTES} bytes"
                rejected.append((position, None, Rejection(source=source, reason="batch_too_large",
                                                           message=message, raw=batch)))
                continue
            decoded, rejections = mparticle.decode_batch(
                batch, source_id=self.config.id, request_id=request_id, received_at=received_at,
                user_id_identity=self.config.user_id_identity,
            )
            events += decoded
            rejected += [(position, index, rejection) for index, rejection in rejections]

        report = await emit(events, [r for *_, r in rejected])
        if not bulk and report.outcome is not Outcome.RETRY and rejected and rejected[0][1] is None:
            # The one batch was unusable as a whole (e.g. a float mpid): the caller must fix it.
            return error_response(RequestRejected(400, rejected[0][2].reason, rejected[0][2].message))
        return _settlement(report, rejected, bulk)


def _settlement(report: EmitReport, rejected: list[tuple[int, int | None, Rejection]], bulk: bool) -> Response:
    """202 (as the Events API answers) with counts once everything settled; 503 when anything did not."""
    if report.outcome is Outcome.RETRY:
        return retry_later_response()
    errors = []
    for position, index, rejection in rejected:
        where = {"batch": position} if bulk else {}
        if index is not None:
            where["event"] = index
        errors.append({**where, "reason": rejection.reason, "message": rejection.message})
    later = report.rejections[len(rejected):]
    errors += [{"messageId": r.source.message_id, "reason": r.reason, "message": r.message} for r in later]
    return json_response(
        {"success": True, "accepted": report.delivered, "rejected": len(rejected) + report.rejected, "errors": errors},
        202,
    )
