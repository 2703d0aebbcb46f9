"""HTTP plumbing shared by export destinations: status classification, Retry-After, lanes, timeouts."""

from __future__ import annotations

import email.utils
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
import yarl

from connectors.destinations.http_transport import AiohttpTransport, timeout_of
from hub.errors import PartialFailure, RejectedError, RetryableError

# The runner's backoff is capped by its own budget; a Retry-After beyond an hour is a misconfigured
# server, not advice worth sleeping on.
MAX_RETRY_AFTER_SECS = 3600.0
DELIVERY_UNKNOWN = "delivery_unknown"


def retry_after_secs(headers: Mapping[str, str], now: float | None = None, *,
                     rate_limit_reset: bool = True) -> float | None:
    """Seconds to wait from `Retry-After` (delta or HTTP date) or `X-RateLimit-Reset` (epoch seconds).

    Braze sends X-RateLimit-Reset as UTC epoch seconds on every response
    (docs/reference/braze.md#responses-and-rate-limits), so it only means "wait" on a 429 (`rate_limit_reset=False`
    otherwise); Segment and mParticle send Retry-After on 429 (docs/reference/segment.md#writing-profiles-back;
    docs/reference/mparticle.md#events-api). Header lookup is case-insensitive (Braze's arrive lower-case).
    """
    now = time.time() if now is None else now
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after")
    if value is not None:
        value = value.strip()
        try:
            return _clamp(float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            if parsed is not None:
                return _clamp(parsed.timestamp() - now)
    reset = lowered.get("x-ratelimit-reset") if rate_limit_reset else None
    if reset is not None:
        try:
            return _clamp(float(reset) - now)
        except ValueError:
            return None
    return None


def _clamp(secs: float) -> float:
    return min(max(secs, 0.0), MAX_RETRY_AFTER_SECS)


def raise_for_response(response: httpx.Response, batch_size: int, *, resend_safe: bool = True) -> None:
    """Return on 2xx; otherwise raise what the runner needs to settle the batch.

    429 is throttling (Retry-After honoured); 408/425 and 5xx may succeed later. When a resend is not
    safe (a message send with no idempotency key), only gateway answers that mean "not processed"
    (502/503) are retried; 500/504 after the body was sent are ambiguous and settle as
    `delivery_unknown` rather than risk a double send (docs/reference/braze.md#campaign-and-canvas-trigger-send;
    docs/reference/idempotency.md#per-destination). 401/403/404 are about the credentials or URL, the same for every
    member: every member is rejected at once instead of the runner bisecting a batch that no split can fix. Other 4xx
    are about content: RejectedError, which the runner bisects to find the bad member.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = f"HTTP {status}: {_excerpt(response)}"
    if status == 429:
        raise RetryableError(detail, throttled=True, retry_after_secs=retry_after_secs(response.headers))
    if status in (408, 425) or status >= 500:
        if resend_safe or status in (502, 503):
            raise RetryableError(detail, throttled=status == 503,
                                 retry_after_secs=retry_after_secs(response.headers, rate_limit_reset=False))
        raise RejectedError(DELIVERY_UNKNOWN, f"{detail}; not resent because a resend could deliver twice")
    if 300 <= status < 400:
        # Redirects are not followed: a moved endpoint is a configuration change
        # (docs/reference/webhooks.md#delivery-rules).
        raise RejectedError("redirect_not_followed", f"{detail}; location {response.headers.get('location')!r}")
    reason = {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(status)
    if reason is not None:
        raise reject_all(batch_size, RejectedError(reason, detail))
    raise RejectedError(f"http_{status}", detail)


def reject_all(batch_size: int, error: RejectedError) -> RejectedError | PartialFailure:
    """The same rejection for every member, without bisecting."""
    if batch_size <= 1:
        return error
    return PartialFailure(rejected={i: error for i in range(batch_size)})


def transport_failure(err: httpx.TransportError, *, resend_safe: bool = True) -> RetryableError | RejectedError:
    """A request that got no HTTP answer: retryable, unless it may have arrived and a resend is unsafe."""
    not_sent = isinstance(err, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    if resend_safe or not_sent:
        return RetryableError(f"{type(err).__name__}: {err}")
    return RejectedError(DELIVERY_UNKNOWN, f"{type(err).__name__} after the request was sent: {err}")


def lane_of(key: str, lanes: int) -> str:
    """Spread keys over `lanes` partitions: same key, same lane (order kept), lanes sent concurrently.

    A partition per user would make batches of one; one partition would send one batch at a time.
    """
    return str(zlib.crc32(key.encode()) % max(lanes, 1))


def _excerpt(response: httpx.Response, limit: int = 300) -> str:
    try:
        text = response.text
    except Exception:  # an undecodable body is still worth a status code in the message
        return "<undecodable body>"
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


def http_client(
    base_url: str,
    headers: Mapping[str, str],
    timeout_secs: float,
    max_connections: int,
    transport: httpx.AsyncBaseTransport | None = None,
    resolver: Any = None,
) -> httpx.AsyncClient:
    """An httpx client that never follows redirects and keeps `max_connections` alive.

    The wire is aiohttp (http_transport.py); `transport` swaps it for an in-process one
    (httpx.MockTransport in unit tests).
    """
    return httpx.AsyncClient(
        transport=transport or AiohttpTransport(max_connections, resolver=resolver),
        base_url=base_url,
        headers=dict(headers),
        timeout=httpx.Timeout(timeout_secs),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )


class Poster:
    """POSTs bodies to one URL straight through an httpx transport, without an `httpx.AsyncClient`.

    For a destination's hot path: the client's per-request work (URL merging, cookie jar, auth and
    redirect flows) cost more CPU than the aiohttp wire under it (bench/braze_export.py). Nothing here
    follows redirects. `transport` swaps the network as in `http_client`.
    """

    def __init__(self, url: str, headers: Mapping[str, str], timeout_secs: float, max_connections: int,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.url = httpx.URL(url)
        self.headers = httpx.Headers(headers)
        self.max_connections = max_connections
        self._given = transport
        self._transport: httpx.AsyncBaseTransport | None = None
        self._timeouts = {"connect": timeout_secs, "read": timeout_secs, "write": timeout_secs, "pool": timeout_secs}
        # The parts of every POST on the aiohttp wire, prepared once: what an httpx Request would add to the
        # headers (its Host and Content-Length are aiohttp's to write) and the parsed URL and timeouts.
        self._wire_url = yarl.URL(str(self.url), encoded=True)
        self._wire_headers = [(k, v) for k, v in httpx.Request("POST", self.url, headers=self.headers, content=b"-")
                              .headers.multi_items() if k != "content-length"]  # appended per body, where httpx puts it
        self._wire_timeout = timeout_of(self._timeouts)

    async def post(self, body: bytes) -> httpx.Response:
        """The answer to one POST; httpx.TransportError when none came (see `transport_failure`)."""
        if self._transport is None:
            self._transport = self._given or AiohttpTransport(self.max_connections)
        if type(self._transport) is AiohttpTransport:  # the hot path: no httpx Request per POST
            headers = [*self._wire_headers, ("content-length", str(len(body)))]
            return await self._transport.send("POST", self._wire_url, headers, body, self._wire_timeout)
        request = httpx.Request("POST", self.url, headers=self.headers, content=body,
                                extensions={"timeout": self._timeouts})
        response = await self._transport.handle_async_request(request)
        await response.aread()
        return response

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None


class MemberFailures:
    """Per-member failures of one batch, by position in the batch, raised as one PartialFailure.

    Destinations check members before sending (a bad one must not sink the others) and send only the
    good ones; `absorb` folds what the request raised back onto batch positions.
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.rejected: dict[int, RejectedError] = {}
        self.retry: dict[int, RetryableError] = {}

    def reject(self, index: int, error: RejectedError) -> None:
        self.rejected[index] = error

    def absorb(self, error: Exception, positions: list[int]) -> None:
        """`error` was raised for a request whose member i is batch member `positions[i]`."""
        if isinstance(error, PartialFailure):
            self.rejected.update({positions[i]: e for i, e in error.rejected.items()})
            self.retry.update({positions[i]: e for i, e in error.retry.items()})
        elif isinstance(error, RetryableError):
            self.retry.update({p: error for p in positions})
        elif isinstance(error, RejectedError) and len(positions) == 1:
            self.rejected[positions[0]] = error
        elif isinstance(error, RejectedError) and not self.rejected and not self.retry:
            raise error  # the whole request was refused without naming a member: the runner bisects
        elif isinstance(error, RejectedError):
            # Members were already settled here, so the batch cannot be bisected as one: retrying the
            # request's members alone lets the runner bisect them on the next attempt.
            self.retry.update({p: RetryableError(f"request refused, to be split: {error}") for p in positions})
        else:
            raise error

    def raise_if_any(self) -> None:
        if self.batch_size == 1 and self.rejected:
            raise self.rejected[0]
        if self.batch_size == 1 and self.retry:
            raise self.retry[0]
        if self.rejected or self.retry:
            raise PartialFailure(rejected=self.rejected, retry=self.retry)


async def post_members(
    client: httpx.AsyncClient,
    path: str,
    batch: Sequence[Any],
    encode: Callable[[Any], bytes],
    frame: Callable[[list[bytes]], bytes],
) -> None:
    """Encode each member (one that cannot be is rejected alone), POST the rest framed as one body.

    What the request raises is folded back onto the members' batch positions (MemberFailures).
    """
    failures = MemberFailures(len(batch))
    encoded: list[bytes] = []
    positions: list[int] = []
    for index, member in enumerate(batch):
        try:
            encoded.append(encode(member))
            positions.append(index)
        except RejectedError as err:
            failures.reject(index, err)
    if encoded:
        try:
            try:
                response = await client.post(path, content=frame(encoded))
            except httpx.TransportError as err:
                raise transport_failure(err) from err
            raise_for_response(response, len(encoded))
        except Exception as err:  # noqa: BLE001 - folded onto batch positions, re-raised there
            failures.absorb(err, positions)
    failures.raise_if_any()
