"""HTTP plumbing shared by webhook sources: bounded body reads, credential checks, JSON answers."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterable

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from connectors.formats.json_document import InvalidJson, decode_json
from hub.connector import EmitReport, Outcome
from hub.events import Rejection


class RequestRejected(Exception):
    """Answer the whole request with this status and reason; nothing in it is processed."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def error_response(error: RequestRejected) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="personalize-hub"'} if error.status == 401 else None
    return json_response({"success": False, "reason": error.reason, "message": error.message}, error.status, headers)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing (413) as soon as it is known to exceed `max_bytes`."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise RequestRejected(413, "body_too_large", f"body of {declared} bytes exceeds the {max_bytes}-byte limit")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise RequestRejected(413, "body_too_large", f"body exceeds the {max_bytes}-byte limit")
            chunks.append(chunk)
    except ClientDisconnect:  # the client left mid-body: nothing to process, no one to answer, not a server error
        raise RequestRejected(400, "incomplete_body", f"client disconnected after {size} bytes") from None
    return b"".join(chunks)


def parse_json(body: bytes) -> object:
    try:
        return decode_json(body)
    except InvalidJson as err:
        raise RequestRejected(400, "invalid_json", f"body is not valid JSON: {err}") from None


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic` header, or None when there is none."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise RequestRejected(401, "unauthorized", "malformed Basic authorization header") from None
    return user, password


def matches_any(candidate: str, secrets: Iterable[str]) -> bool:
    """Constant-time comparison against every configured secret (no early exit on the first match)."""
    given = candidate.encode()
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(given, secret.encode())
    return found


def settlement_response(report: EmitReport, total: int, decoded_rejections: list[tuple[int, Rejection]]) -> Response:
    """200 with counts once everything settled; 503 (retry later) when anything did not."""
    if report.outcome is Outcome.RETRY:
        return json_response(
            {"success": False, "reason": "unavailable", "message": "delivery is failing; retry later"},
            503,
            {"Retry-After": "1"},
        )
    errors = [{"index": i, "reason": r.reason, "message": r.message} for i, r in decoded_rejections]
    later = report.rejections[len(decoded_rejections):]
    errors += [{"messageId": r.source.message_id, "reason": r.reason, "message": r.message} for r in later]
    rejected = len(decoded_rejections) + report.rejected
    return json_response({"success": True, "accepted": total - rejected, "rejected": rejected, "errors": errors})
