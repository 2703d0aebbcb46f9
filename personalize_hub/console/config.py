"""The `console:` config section: the operator console's token, debugger ring size and redaction."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.secret import Secret

# Field names whose values never leave the process through the console, whatever their nesting.
# Matched case-insensitively against the key with "-" and "_" removed.
DEFAULT_REDACTED_KEYS = (
    "writekey", "writekeys", "token", "apikey", "apisecret", "secret", "secrets", "sharedsecrets", "password",
    "authorization", "awssecretaccesskey", "secretaccesskey", "sessiontoken", "credentials",
)
MIN_TOKEN_LENGTH = 16  # a console token guards replays and job runs: no short, guessable ones


class ConsoleConfig(BaseModel):
    """The operator console under /console: overview, live events, dead letter, jobs, config."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Serve /console on the hub's HTTP port.")
    token: Secret | None = Field(
        None, description=f"Bearer token (or login form) for the console, ≥ {MIN_TOKEN_LENGTH} characters. "
        "Without one the console is served read-only, and only when http.host is a loopback address.")
    ring_size: int = Field(1000, ge=10, le=100_000, description="Recent events kept in memory for the debugger.")
    delivered_per_sec: int = Field(
        100, ge=1, le=100_000, description="Delivered events the debugger keeps per second at most (every "
        "rejected or retried one is kept): a busy hub pays for what it keeps, a person reads a few a second.")
    redact_fields: list[str] = Field(
        default_factory=lambda: ["email", "phone", "first_name", "last_name", "address", "ip", "birthday"],
        description="PII property/trait/context keys shown as \"[redacted]\" (secrets always are).")

    @field_validator("token")
    @classmethod
    def _strong_enough(cls, token: Secret | None) -> Secret | None:
        # Blank tokens are refused by Secret itself; a short one is guessable.
        if token is not None and len(token.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(f"the console token must have at least {MIN_TOKEN_LENGTH} characters")
        return token
