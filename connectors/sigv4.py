"""SigV4 for the lean path's hand-built JSON POSTs: botocore's signature, its signing key derived once a day.

botocore's `SigV4Auth.add_auth` rebuilds everything per request: an `HTTPHeaders` map (twice), `urlsplit`
of the URL, the four-HMAC signing-key chain, the scope strings. For one fixed endpoint and a fixed header
set (Content-Type, X-Amz-Date, X-Amz-Security-Token when the credentials carry one) all of that but the
timestamp, the body hash and the final HMAC is the same from call to call. The algorithm is AWS's
("Create a signed AWS API request", docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html);
tests/unit/connectors/test_sigv4.py proves the headers equal botocore's for the same clock and credentials.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from typing import Any
from urllib.parse import quote, urlsplit

import botocore.auth
from botocore.utils import normalize_url_path

ALGORITHM = "AWS4-HMAC-SHA256"
CONTENT_TYPE = "application/json"


class JsonPostSigner:
    """Signs `POST <endpoint><path>` requests with a JSON body for one (service, region) endpoint.

    The signing key depends only on the secret key, the day, the region and the service: it is derived
    once per (secret, day) and kept. The clock is botocore's (`botocore.auth.get_current_datetime`), so
    whatever freezes botocore's signing time freezes this one's too.
    """

    __slots__ = ("host", "_region", "_service", "_paths", "_key", "_stamp")

    def __init__(self, endpoint_url: str, *, region: str, service: str):
        self.host = botocore.auth._host_from_url(endpoint_url)  # lower-case, default port dropped, as botocore
        self._region = region
        self._service = service
        self._paths: dict[str, str] = {}  # request path → its canonical (normalised, quoted) form
        self._key: tuple[str, str, bytes] | None = None  # (secret key, yyyymmdd, signing key)
        # (the clock's reading to the second, its X-Amz-Date): strftime cost more than the signature's HMAC
        self._stamp: tuple[datetime.datetime | None, str] = (None, "")

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == secret and cached[1] == day:
            return cached[2]
        key = _hmac(f"AWS4{secret}".encode(), day)
        for part in (self._region, self._service, "aws4_request"):
            key = _hmac(key, part)
        self._key = (secret, day, key)
        return key

    def _timestamp(self, now: datetime.datetime) -> str:
        """X-Amz-Date for `now`, formatted once per second."""
        second = now.replace(microsecond=0)
        if self._stamp[0] != second:
            self._stamp = (second, second.strftime(botocore.auth.SIGV4_TIMESTAMP))
        return self._stamp[1]

    def _canonical_path(self, url: str) -> str:
        path = self._paths.get(url)
        if path is None:
            path = self._paths[url] = quote(normalize_url_path(urlsplit(url).path), safe="/~")
        return path

    def headers(self, url: str, body: bytes, credentials: Any) -> dict[str, str]:
        """The signed headers for POSTing `body` to `url` (on this signer's endpoint) with frozen `credentials`.

        In botocore's order: Content-Type, X-Amz-Date, X-Amz-Security-Token (if any), Authorization.
        """
        stamp = self._timestamp(botocore.auth.get_current_datetime())
        day = stamp[:8]
        token = credentials.token
        headers = {"Content-Type": CONTENT_TYPE, "X-Amz-Date": stamp}
        if token:
            headers["X-Amz-Security-Token"] = token
            signed = "content-type;host;x-amz-date;x-amz-security-token"
            canonical_headers = (f"content-type:{CONTENT_TYPE}\nhost:{self.host}\nx-amz-date:{stamp}\n"
                                 f"x-amz-security-token:{' '.join(token.split())}\n")
        else:
            signed = "content-type;host;x-amz-date"
            canonical_headers = f"content-type:{CONTENT_TYPE}\nhost:{self.host}\nx-amz-date:{stamp}\n"
        # Always the body's hash: botocore signs the payload over http, and over https unless an
        # operation turns payload signing off, which none of personalize-events' does.
        canonical_request = (f"POST\n{self._canonical_path(url)}\n\n{canonical_headers}\n{signed}\n"
                             f"{hashlib.sha256(body).hexdigest()}")
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        string_to_sign = (f"{ALGORITHM}\n{stamp}\n{scope}\n"
                          f"{hashlib.sha256(canonical_request.encode()).hexdigest()}")
        signature = hmac.digest(self._signing_key(credentials.secret_key, day), string_to_sign.encode(),
                                "sha256").hex()
        headers["Authorization"] = (f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={signature}")
        return headers


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.digest(key, message.encode(), "sha256")
