"""The one test for ids that are really missing: the placeholders SDKs send when an id is unset."""

from __future__ import annotations

# Strings SDKs send when an id is unset; Personalize silently drops events carrying them
# (docs/reference/personalize-api.md#placeholder-ids).
PLACEHOLDER_IDS = frozenset({"", "null", "undefined", "none", "nil", "nan"})


# What a placeholder can start with, padded or not: the first letter of one (null, nil, nan, none,
# undefined) in either case, or any character `str.strip` removes (Unicode white space, U+3000 the last).
_MAY_START = frozenset("nNuU") | frozenset(c for c in map(chr, range(0x3001)) if c.isspace())


def is_placeholder_id(value: str) -> bool:
    """True for "", "null", "undefined" and the like (any case, padded or not): a missing id dressed up as one."""
    if len(value) > 16:  # hot path: real ids are mostly longer than any padded placeholder
        return value.isspace()
    if value and value[0] not in _MAY_START:  # hot path: most short ids start like no placeholder
        return False
    return value.strip().lower() in PLACEHOLDER_IDS


def real_id(value: object) -> str | None:
    """`value` as an id string, or None when it is absent or a placeholder (no invented ids)."""
    if value is None:
        return None
    text = str(value).strip()
    return None if is_placeholder_id(text) else text
