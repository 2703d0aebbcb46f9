"""Segment's webhook signature: `X-Signature`, the hex HMAC-SHA1 of the body with a shared secret."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence

from connectors.sources.webhook_http import RequestRejected, matches_any

# segment.com/docs/connections/destinations/catalog/actions-webhook/#getting-started: "a hex-encoded SHA1 hash
# generated using the shared secret and the request body".
HEADER = "x-signature"


class BodySignature:
    """Computes the HMAC of a body with every configured secret as its bytes arrive, then checks the header.

    With Webhooks (Actions) batching, Segment signs only the first event of the array, not the request body
    (support.twilio.com/hc/en-us/articles/51193799782171): a batched body is also accepted when the header is
    the HMAC of its first member, byte for byte as sent. The other members are then not covered by it.
    """

    def __init__(self, secrets: Sequence[str]):
        self.secrets = [secret.encode() for secret in secrets]
        self.signers = [hmac.new(secret, digestmod=hashlib.sha1) for secret in self.secrets]

    def update(self, chunk: bytes) -> None:
        for signer in self.signers:
            signer.update(chunk)

    def verify(self, signature: str, body: bytes) -> None:
        """401 unless `signature` is the HMAC of the body as received, or of the first member of an array body."""
        if not self.secrets:
            raise RequestRejected(401, "unauthorized", "X-Signature given but no shared_secrets are configured")
        given = signature.strip().lower()
        if matches_any(given, [signer.hexdigest() for signer in self.signers]):
            return
        first = _first_member(body)
        if first is not None:
            if matches_any(given, [hmac.new(secret, first, hashlib.sha1).hexdigest() for secret in self.secrets]):
                return
        raise RequestRejected(401, "unauthorized", "X-Signature does not match the body with any shared secret")


def _first_member(body: bytes) -> bytes | None:
    """The bytes of the first element of a JSON array body, as sent; None when the body is no such array."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    start = len(text) - len(text.lstrip())
    if not text.startswith("[", start):
        return None
    start = len(text) - len(text[start + 1:].lstrip())
    try:
        _, end = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        return None
    return text[start:end].encode()
