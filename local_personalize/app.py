"""The wire protocols on one port: control plane (JSON 1.1 on `POST /`), events and runtime (rest-json).

A plain ASGI application: requests go to the control plane when they carry `X-Amz-Target`, otherwise by
path (docs/reference/personalize-api.md#wire-protocols). Errors follow
docs/reference/personalize-api.md#error-responses: `x-amzn-ErrorType` plus `{"__type", "message"}` and
`x-amzn-RequestId` on every answer. One info log line per request.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson

from local_personalize import runtime
from local_personalize.control import OPERATIONS
from local_personalize.errors import ApiError, InternalFailure, InvalidInput, RequestTooLarge, UnknownOperation
from local_personalize.ingest import HANDLERS as INGEST_HANDLERS
from local_personalize.service import Service
from local_personalize.settings import Settings
from local_personalize.validation import validate_request

logger = logging.getLogger("local_personalize.requests")

# targetPrefix of the control-plane model (docs/reference/personalize-api.md#wire-protocols)
TARGET_PREFIX = "AmazonPersonalize."
JSON_11 = b"application/x-amz-json-1.1"
REST_JSON = b"application/json"
# POST path → (service model, operation) for the two rest-json services
# (docs/reference/personalize-api.md#wire-protocols).
REST_ROUTES = {
    "/events": ("personalize-events", "PutEvents"),
    "/items": ("personalize-events", "PutItems"),
    "/users": ("personalize-events", "PutUsers"),
    "/actions": ("personalize-events", "PutActions"),
    "/action-interactions": ("personalize-events", "PutActionInteractions"),
    "/recommendations": ("personalize-runtime", "GetRecommendations"),
    "/personalize-ranking": ("personalize-runtime", "GetPersonalizedRanking"),
    "/action-recommendations": ("personalize-runtime", "GetActionRecommendations"),
}
HEALTH_PATHS = frozenset({"/", "/ping"})
HEALTH_BODY = orjson.dumps({"status": "ok", "service": "local_personalize"})


class LocalPersonalize:
    """ASGI app serving every Personalize API this package emulates."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service = Service(settings)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.service.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.service.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        target = None
        for name, value in scope["headers"]:
            if name == b"x-amz-target":
                target = value.decode("latin-1")
                break
        if method == "GET" and path in HEALTH_PATHS and target is None:
            await _respond(send, 200, REST_JSON, HEALTH_BODY, None)
            logger.info("GET %s 200 %.2fms", path, (time.perf_counter() - started) * 1000)
            return
        request_id = str(uuid.uuid4())
        protocol, operation = ("json", None) if target is not None else ("rest-json", None)
        try:
            body = await _read_body(receive, self.settings.max_body_bytes)
            if target is not None:
                operation = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else target
                if not target.startswith(TARGET_PREFIX) or operation not in OPERATIONS or method != "POST":
                    raise UnknownOperation(f"Operation {target} is not supported by local_personalize")
                payload = _json_object(body)
                validate_request("personalize", operation, payload)
                answer: Any = await self.service.control(operation, payload)
            else:
                route = REST_ROUTES.get(path)
                if route is None or method != "POST":
                    raise UnknownOperation(f"No operation at {method} {path}")
                service_name, operation = route
                payload = _json_object(body)
                validate_request(service_name, operation, payload)
                if operation in INGEST_HANDLERS:
                    answer = await self.service.ingest(operation, payload)
                else:
                    answer = await runtime.HANDLERS[operation](self.service, payload)
            status = 200
            content = b"" if answer is None else orjson.dumps(answer)
            await _respond(send, status, JSON_11 if protocol == "json" else REST_JSON, content, request_id)
        except ApiError as error:
            status = await _error(send, error, protocol, request_id)
        except Exception:
            logger.exception("%s failed", operation or path)
            status = await _error(send, InternalFailure("Internal error; see the local_personalize log"),
                                  protocol, request_id)
        logger.info("%s %s %d %.2fms", operation or "-", path, status, (time.perf_counter() - started) * 1000)


def _json_object(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput("Request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidInput("Request body must be a JSON object")
    return payload


async def _read_body(receive: Any, limit: int) -> bytes:
    """The request body, refused as soon as it grows past `limit` bytes (nothing more is buffered)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"Request body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _error(send: Any, error: ApiError, protocol: str, request_id: str) -> int:
    status = error.status_for(protocol)
    content = orjson.dumps({"__type": error.code, "message": error.message})
    await _respond(send, status, JSON_11 if protocol == "json" else REST_JSON, content, request_id,
                   error_type=error.code)
    return status


async def _respond(send: Any, status: int, content_type: bytes, content: bytes, request_id: str | None,
                   error_type: str | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(content)).encode())]
    if request_id is not None:
        headers.append((b"x-amzn-requestid", request_id.encode()))
    if error_type is not None:
        headers.append((b"x-amzn-errortype", error_type.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
