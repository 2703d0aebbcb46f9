"""Redaction for everything the console shows: secrets always, configured PII fields in payloads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from personalize_hub.console.config import DEFAULT_REDACTED_KEYS

REDACTED = "[redacted]"


def _normalise(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


class Redactor:
    """Copies a JSON-like tree with the values of secret and PII keys replaced, at any depth."""

    def __init__(self, pii_fields: Iterable[str] = (), secret_keys: Iterable[str] = DEFAULT_REDACTED_KEYS):
        self._keys = frozenset(_normalise(k) for k in (*secret_keys, *pii_fields))

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: REDACTED if isinstance(k, str) and _normalise(k) in self._keys and v not in (None, "")
                    else self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value
