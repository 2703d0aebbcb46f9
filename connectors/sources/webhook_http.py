"""HTTP plumbing shared by webhook sources: bounded body reads, credential checks, JSON answers."""

from __future__ import annotations

import base64
import hmac
import zlib
from collections.abc import Awaitable, Callable, Iterable

import orjson
from pydantic import Field
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from connectors.formats.json_document import InvalidJson, decode_json
from hub.connector import EmitReport, Outcome, SourceConfig
from hub.events import Rejection


class RequestRejected(Exception):
    """Answer the whole request with this status and reason; nothing in it is processed."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


class WebhookSourceConfig(SourceConfig):
    """Base of webhook source configs: what every HTTP route shares."""

    max_requests_in_flight: int = Field(
        64, ge=1, description="Requests this source handles at once; more are answered 429 with Retry-After "
                              "(which the Segment and RudderStack SDKs retry) rather than queued without bound.",
    )


class RequestGate:
    """Turns a source's handler into its Starlette endpoints: a bound on requests in flight (429 beyond it),
    and a RequestRejected answered as the JSON error it describes."""

    def __init__(self, max_in_flight: int):
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    def endpoint(self, handle: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            if self.in_flight >= self.max_in_flight:
                return json_response(error_body("overloaded", f"{self.in_flight} requests in flight; retry later"),
                                     429, {"Retry-After": "1"})
            self.in_flight += 1
            try:
                return await handle(request)
            except RequestRejected as err:
                return error_response(err)
            finally:
                self.in_flight -= 1

        return serve


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def error_response(error: RequestRejected) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="personalize-hub"'} if error.status == 401 else None
    return json_response(error_body(error.reason, error.message), error.status, headers)


def error_body(reason: str, message: str) -> dict[str, object]:
    """An error answer the SDKs can read: `code` and `message` are the keys Segment's and RudderStack's
    Python SDKs take from it (a body without `code` is a KeyError in rudder-sdk-python); `reason` is ours."""
    return {"success": False, "code": reason, "reason": reason, "message": message}


async def read_body(request: Request, max_bytes: int, on_wire: Callable[[bytes], None] | None = None) -> bytes:
    """The request body, inflated per its Content-Encoding, refusing (413) as soon as it exceeds `max_bytes`.

    The limit applies to both the bytes received and the inflated body; inflation is incremental, so a
    small body that inflates to gigabytes costs at most `max_bytes` of memory. `on_wire` sees each chunk
    as received (a signature is computed over those bytes).
    """
    inflater = BodyInflater(content_coding(request.headers.get("content-encoding", "")), max_bytes)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise RequestRejected(413, "body_too_large", f"body of {declared} bytes exceeds the {max_bytes}-byte limit")
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise RequestRejected(413, "body_too_large", f"body exceeds the {max_bytes}-byte limit")
            if on_wire is not None:
                on_wire(chunk)
            inflater.feed(chunk)
    except ClientDisconnect:  # the client left mid-body: nothing to process, no one to answer, not a server error
        raise RequestRejected(400, "incomplete_body", f"client disconnected after {received} bytes") from None
    return inflater.finish()


CODINGS = ("gzip", "deflate", "identity")


def content_coding(header: str) -> str:
    """The one coding of a Content-Encoding header (RFC 9110 docs/reference/personalize-api.md#open-points); 415 for any other or for stacked codings."""
    codings = [c.strip().lower() for c in header.split(",") if c.strip()]
    # x-gzip: RFC 9110 docs/reference/personalize-api.md#open-points.1.3
    codings = ["gzip" if c == "x-gzip" else c for c in codings if c != "identity"]
    if not codings:
        return "identity"
    if len(codings) > 1 or codings[0] not in CODINGS:
        raise RequestRejected(
            415, "unsupported_encoding",
            f"Content-Encoding {header.strip()!r} is not supported; use one of {', '.join(CODINGS)}",
        )
    return codings[0]


class BodyInflater:
    """Accumulates a body as it arrives, inflating gzip or deflate (zlib-wrapped or raw) within a size limit."""

    def __init__(self, coding: str, max_bytes: int):
        self.coding, self.max_bytes = coding, max_bytes
        self.parts: list[bytes] = []
        self.size = 0
        self.pending = b""  # deflate: the first bytes, until they tell zlib-wrapped from raw
        self.inflater: zlib._Decompress | None = None
        if coding == "gzip":
            self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> None:
        if self.coding == "identity":
            self._keep(data)
            return
        if self.inflater is None:  # deflate, wrapper not known yet
            self.pending += data
            if len(self.pending) < 2:
                return
            data, self.pending = self.pending, b""
            self.inflater = zlib.decompressobj(zlib.MAX_WBITS if _zlib_header(data) else -zlib.MAX_WBITS)
        self._inflate(data)

    def _inflate(self, data: bytes) -> None:
        while data:
            if self.inflater.eof:
                # gzip allows several members one after another (RFC 1952
                # docs/reference/personalize-api.md#error-codes-and-statuses); anything else is trailing junk.
                if self.coding != "gzip":
                    raise RequestRejected(400, "corrupt_encoding", "deflate body: data after the end of the stream")
                self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                # Never more out than one byte past the limit: memory stays bounded whatever the ratio.
                out = self.inflater.decompress(data, self.max_bytes - self.size + 1)
            except zlib.error as err:
                raise RequestRejected(400, "corrupt_encoding", f"{self.coding} body is corrupt: {err}") from None
            self._keep(out)
            data = self.inflater.unused_data if self.inflater.eof else self.inflater.unconsumed_tail

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise RequestRejected(413, "body_too_large", f"inflated body exceeds the {self.max_bytes}-byte limit")
        if data:
            self.parts.append(data)

    def finish(self) -> bytes:
        if self.coding == "deflate" and self.inflater is None and self.pending:
            raise RequestRejected(400, "corrupt_encoding", "deflate body is truncated: too short to be a stream")
        if self.inflater is not None and not self.inflater.eof:
            raise RequestRejected(400, "corrupt_encoding", f"{self.coding} body is truncated: the stream does not end")
        return b"".join(self.parts)


def _zlib_header(data: bytes) -> bool:
    """Whether deflate data starts with a zlib header (RFC 1950 docs/reference/personalize-api.md#error-codes-and-statuses): method 8 and a check value divisible by 31;
    clients send both that and raw deflate (RFC 1951) as `deflate`."""
    return data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


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


def retry_later_response() -> Response:
    """503 with Retry-After: every SDK read (Segment, RudderStack; Python and Node) retries it."""
    return json_response(error_body("unavailable", "delivery is failing; retry later"), 503, {"Retry-After": "1"})


def settlement_response(report: EmitReport, total: int, decoded_rejections: list[tuple[int, Rejection]]) -> Response:
    """200 with counts once everything settled; 503 (retry later) when anything did not."""
    if report.outcome is Outcome.RETRY:
        return retry_later_response()
    errors = [{"index": i, "reason": r.reason, "message": r.message} for i, r in decoded_rejections]
    later = report.rejections[len(decoded_rejections):]
    errors += [{"messageId": r.source.message_id, "reason": r.reason, "message": r.message} for r in later]
    rejected = len(decoded_rejections) + report.rejected
    return json_response({"success": True, "accepted": total - rejected, "rejected": rejected, "errors": errors})
