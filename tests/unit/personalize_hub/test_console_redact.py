"""Redaction: secrets at any depth always, configured PII fields too, everything else untouched."""

from __future__ import annotations

from personalize_hub.console.redact import REDACTED, Redactor


def test_secrets_and_pii_are_redacted_at_any_depth():
    redact = Redactor(pii_fields=["email", "first_name"])
    payload = {
        "writeKey": "wk-secret", "userId": "u1",
        "properties": {"product_id": "p1", "email": "a@b.c", "nested": [{"firstName": "Ann", "price": 3}]},
        "sources": [{"type": "segment_webhook", "write_keys": ["k1", "k2"], "shared_secrets": ["s"]}],
        "braze": {"api_key": "bk", "rest_url": "https://rest.example"}, "console": {"token": "t" * 20},
        "password": "", "Authorization": "Basic x",
    }
    out = redact(payload)
    assert out["writeKey"] == REDACTED and out["userId"] == "u1"
    assert out["properties"]["email"] == REDACTED and out["properties"]["product_id"] == "p1"
    assert out["properties"]["nested"] == [{"firstName": REDACTED, "price": 3}]
    assert out["sources"][0]["write_keys"] == REDACTED and out["sources"][0]["shared_secrets"] == REDACTED
    assert out["braze"] == {"api_key": REDACTED, "rest_url": "https://rest.example"}
    assert out["console"]["token"] == REDACTED and out["Authorization"] == REDACTED
    assert out["password"] == ""  # nothing to hide: an empty value stays visibly empty
    assert payload["writeKey"] == "wk-secret"  # a copy: the ring's original is not modified


def test_scalars_and_lists_pass_through():
    redact = Redactor()
    assert redact("text") == "text" and redact(3) == 3 and redact(None) is None
    assert redact([{"token": "x"}, 1]) == [{"token": REDACTED}, 1]
