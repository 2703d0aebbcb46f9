"""`Secret`: the one config type for credentials; empty or whitespace-only values are a config error."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, SecretStr

# Secrets the operator generates (webhook shared secrets, /recommendations API keys, the hub's own
# write keys for tests and demos) should carry at least 128 bits of entropy: 32 characters of
# `python -c 'import secrets; print(secrets.token_urlsafe(32))'` (43 characters) is well above it.
# Vendor-issued keys (Segment write keys, mParticle keys, Braze REST keys) are taken as issued.
GENERATED_SECRET_MIN_CHARS = 32


def _not_blank(value: SecretStr) -> SecretStr:
    # An unset `${SEGMENT_WRITE_KEY}` interpolates to "": accepting it would let `curl -u :` in.
    if not value.get_secret_value().strip():
        raise ValueError("is empty or whitespace; set the secret (e.g. its environment variable)")
    return value


Secret = Annotated[SecretStr, AfterValidator(_not_blank)]
"""A credential in config: never printed (SecretStr), never empty or blank (checked where it is parsed)."""
