"""Who may use the console: a token (Bearer header or login cookie), CSRF for every state change.

With a token configured every console route needs it. Without one, the console is served read-only and
only while the hub listens on loopback (whoever can reach it is already on the machine).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from enum import Enum

from starlette.requests import Request

COOKIE = "hub_console"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"


class Access(Enum):
    """What a request may do."""

    NONE = "none"
    READ = "read"
    WRITE = "write"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConsoleAuth:
    """Checks credentials in constant time; the cookie and CSRF values are derived from the token, never it."""

    def __init__(self, token: str | None, bound_host: str):
        self.token = token
        self.served = token is not None or is_loopback(bound_host)
        secret = (token or "").encode()
        # Derived values: a leaked cookie or CSRF value does not reveal the token, and rotating the token
        # invalidates both.
        self.session_value = hmac.new(secret, b"personalize-hub console session", hashlib.sha256).hexdigest()
        self.csrf_value = hmac.new(secret, b"personalize-hub console csrf", hashlib.sha256).hexdigest()

    def access(self, request: Request) -> Access:
        if not self.served:
            return Access.NONE
        if self.token is None:
            return Access.READ
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer ") and self.token_matches(header[7:].strip()):
            return Access.WRITE
        cookie = request.cookies.get(COOKIE, "")
        if cookie and hmac.compare_digest(cookie.encode(), self.session_value.encode()):
            return Access.WRITE
        return Access.NONE

    def token_matches(self, candidate: str) -> bool:
        return self.token is not None and hmac.compare_digest(candidate.encode(), self.token.encode())

    def csrf_ok(self, request: Request, form_value: str | None = None) -> bool:
        """A state change by cookie must echo the CSRF value; a Bearer request cannot be forged by a page."""
        if request.headers.get("authorization", "").lower().startswith("bearer "):
            return True
        sent = request.headers.get(CSRF_HEADER) or form_value or ""
        return hmac.compare_digest(sent.encode(), self.csrf_value.encode())
