"""Lean request path for PutEvents/PutItems/PutUsers: botocore's exact bytes and SigV4, minus its per-call machinery.

aiobotocore spends 1.1–1.4 ms of CPU per 10-event PutEvents call, mostly in botocore's shape-walking
serializer (~45 µs per `sentAt`) and event-hook dispatch; that caps one process near 7,000 events/s,
below the 10,000 events/s a tracker's quota allows (docs/reference/personalize-api.md#quotas). These three operations
are fixed and tiny (rest-json, `POST /events|/items|/users`, every member in the JSON body,
docs/reference/personalize-api.md#wire-protocols, #field-constraints), so this module writes the body itself in
botocore's wire form and keeps what must stay botocore's: the credential chain (refreshable credentials from the
session) and botocore's SigV4 signature (connectors/sigv4.py: the same bytes, the signing key kept for a day).
tests/unit/connectors/personalize/test_personalize_wire.py proves the requests are byte-for-byte botocore's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from http import HTTPStatus
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any
from urllib.parse import urlsplit

import botocore
from multidict import CIMultiDict

from connectors.destinations.personalize import errors
from connectors.sigv4 import JsonPostSigner
from hub.errors import HubError, RejectedError

# personalize-events is rest-json: the operation is the URL path
# (docs/reference/personalize-api.md#wire-protocols, #field-constraints).
OPERATION_PATHS = {"PutEvents": "/events", "PutItems": "/items", "PutUsers": "/users"}
# what botocore's rest-json serializer sets for a JSON body (docs/reference/personalize-api.md#wire-protocols)
CONTENT_TYPE = "application/json"
# Unsigned headers botocore's HTTP layer adds after signing; sent alike so both paths look the same.
UNSIGNED_HEADERS = {
    "User-Agent": f"personalize-hub botocore/{botocore.__version__}",
    "Accept": "*/*",
    "Accept-Encoding": "identity",  # no compressed answers: error bodies are read as they are
}


def without_none(record: dict[str, Any]) -> dict[str, Any]:
    """The record with null members dropped: botocore refuses None, and absent is what null means here."""
    if None in record.values():
        return {key: value for key, value in record.items() if value is not None}
    return record


def sent_at_wire(value: float) -> int | float:
    """A `sentAt` in epoch seconds as botocore writes a rest-json timestamp member.

    botocore turns the number into a datetime (`fromtimestamp`, microseconds rounded half-even) and
    writes whole seconds as an int, else `(secs * 10**6 + micros) / 10**6` (serialize.py
    `_timestamp_unixtimestamp`). Same arithmetic here, without the datetime round trip.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"sentAt must be epoch seconds, not {type(value).__name__}")
    fraction, whole = math.modf(value)
    micros = round(fraction * 1_000_000)
    if micros >= 1_000_000:
        micros -= 1_000_000
        whole += 1
    elif micros < 0:
        micros += 1_000_000
        whole -= 1
    secs = int(whole)
    return (secs * 10**6 + micros) / 10**6 if micros else secs


def _float_wire(value: Any) -> Any:
    # botocore sends non-finite floats as the strings "Infinity", "-Infinity" and "NaN" (_handle_float).
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _event_wire(event: Mapping[str, Any]) -> dict[str, Any]:
    wire = dict(event)  # never rewrite the caller's record: it is retried and dead-lettered as it is
    wire["sentAt"] = sent_at_wire(event["sentAt"])
    if "eventValue" in wire:
        wire["eventValue"] = _float_wire(wire["eventValue"])
    return wire


# `json.dumps(params)` is CPython's C encoder with these settings (json/encoder.py, JSONEncoder.iterencode), called
# here without the Python layers around it, which cost a sixth of a 10-event body; a fresh circular-reference memo
# per body, and json's own `default` (the same TypeError for what JSON cannot hold).
_JSON_DEFAULTS = json.JSONEncoder()


def encode_body(operation: str, params: Mapping[str, Any]) -> bytes:
    """The request body botocore would send for `client.<operation>(**params)`.

    botocore keeps the caller's member order and writes `json.dumps(body)` with its defaults
    (`", "` / `": "` separators, ASCII escapes); neither orjson nor msgspec can write that form, and the
    C-accelerated stdlib encoder costs ~13 µs for ten events, so it is used as is.
    """
    if operation == "PutEvents":
        params = {**params, "eventList": [_event_wire(e) for e in params["eventList"]]}
    if c_make_encoder is None:  # an interpreter without json's C accelerator (PyPy): the same text, slower
        return _JSON_DEFAULTS.encode(params).encode("utf-8")
    return "".join(c_make_encoder({}, _JSON_DEFAULTS.default, encode_basestring_ascii, None, ": ", ", ", False,
                                 False, True)(params, 0)).encode("utf-8")


def parse_error(status: int, headers: Mapping[str, str], body: bytes) -> tuple[str | None, str]:
    """(code, message) of a rest-json error answer, read as botocore reads it (docs/reference/personalize-api.md#how-botocore-reads-an-error).

    A 5xx with an empty or HTML body (a load balancer's page) names no error: botocore's generic
    error parsing gives it the HTTP reason phrase as message, and so does this.
    """
    stripped = body.strip()
    if status >= 500 and (not stripped or stripped.startswith(b"<html>")):
        return None, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    code = headers.get("x-amzn-ErrorType") or document.get("code") or document.get("Code") or document.get("__type")
    if isinstance(code, str) and code:
        code = code.split(":", 1)[0].rsplit("#", 1)[-1]  # "ns#Code:http://..." → "Code"
    else:
        code = None
    message = document.get("message") or document.get("Message") or ""
    return code, str(message)


class LeanIngestApi:
    """Sends one personalize-events operation per `call`, signed as botocore signs, over keep-alive connections."""

    def __init__(self, aws: Any, *, endpoint_url: str, region: str, signing_name: str = "personalize"):
        self._aws = aws  # connectors.aws.AwsClients: credentials and the shared HTTP pool
        # botocore joins the endpoint's own path and the operation path the same way (endpoint.py _urljoin).
        self._base_url = endpoint_url.rstrip("/")
        self._region = region
        self._signing_name = signing_name
        self._signer = JsonPostSigner(self._base_url, region=region, service=signing_name)
        self._proxy = aws.proxy_for(self._base_url)  # once: the environment does not change under us
        # Without a proxy, the lean HTTP/1.1 pool; through one, aiohttp (which speaks to proxies).
        parts = urlsplit(self._base_url)
        self._pool = aws.http1_pool(f"{parts.scheme}://{parts.netloc}") if self._proxy.url is None else None
        self._host = {"Host": self._signer.host}  # as botocore sends it: first, the default port left out
        self._targets = {operation: urlsplit(self._base_url + path).path  # the request line's path, per operation
                         for operation, path in OPERATION_PATHS.items()}

    async def signed_request(self, operation: str, params: Mapping[str, Any]) -> tuple[str, dict[str, str], bytes]:
        """(url, headers, body) of the request for `operation`, signed now with current credentials."""
        url = self._base_url + OPERATION_PATHS[operation]
        try:
            body = encode_body(operation, params)
        except (TypeError, ValueError, KeyError) as err:
            # botocore would refuse the same input client-side (ParamValidationError): never sendable.
            raise RejectedError("invalid_input", f"{operation} request cannot be encoded: {err}") from None
        credentials = await self._aws.frozen_credentials()
        headers = self._signer.headers(url, body, credentials)  # botocore's SigV4, its key derived once a day
        headers.update(UNSIGNED_HEADERS)
        return url, headers, body

    async def call(self, operation: str, params: Mapping[str, Any]) -> None:
        """Send; return when the service accepted it, else raise the classified error (errors.py)."""
        try:
            url, headers, body = await self.signed_request(operation, params)
            if self._pool is not None:
                answer = await self._pool.post(self._targets[operation], {**self._host, **headers}, body)
                status, payload, answer_headers = answer.status, answer.body, answer.headers
            else:
                http = self._aws.http_session()
                async with http.post(url, data=body, headers=headers, proxy=self._proxy.url,
                                     proxy_headers=self._proxy.headers) as response:
                    status = response.status
                    payload = await response.read()  # read to the end so the connection goes back to the pool
                    answer_headers = response.headers
        except HubError:
            raise
        except Exception as err:  # noqa: BLE001 - classify_exception re-raises what is not a send error
            raise errors.classify_exception(err) from err
        # events operations answer 200 with an empty body (docs/reference/personalize-api.md#putevents)
        if status < 300:
            return
        answer_headers = CIMultiDict(answer_headers)  # header names are case-insensitive (RFC 9110)
        code, message = parse_error(status, answer_headers, payload)
        raise errors.classify(status, code, message, answer_headers)
