"""SMTP transport for the email destination: pooled aiosmtplib connections, replies classified by code."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Literal

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field

from hub.errors import RejectedError, RetryableError
from hub.secret import Secret

DELIVERY_UNKNOWN = "delivery_unknown"


class SmtpSettings(BaseModel):
    """An SMTP relay (SES SMTP, Postfix, Mailgun, …)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["smtp"] = Field(description="smtp")
    host: str = Field(..., description="Relay host, e.g. ${SMTP_HOST} or email-smtp.<region>.amazonaws.com.")
    port: int = Field(587, ge=1, le=65535, description="587 (STARTTLS), 465 (TLS) or 25.")
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls (587), tls (implicit, 465) or none (a local relay only)."
    )
    username: str | None = Field(None, description="Login; SES SMTP credentials are not the IAM keys (docs/reference/email.md#amazon-ses-v2).")
    password: Secret | None = Field(None, description="Password, e.g. ${SMTP_PASSWORD}.")
    timeout_secs: float = Field(30.0, gt=0, description="Per-command timeout.")


class SmtpTransport:
    """Sends each message over one of up to `pool_size` open connections (one message per user, docs/reference/email.md#smtp)."""

    def __init__(self, settings: SmtpSettings, pool_size: int):
        self.settings = settings
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(pool_size)

    async def start(self) -> None:
        """Connections open on first use: a relay that is down fails sends, which are retried."""

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            try:
                await connection.quit()
            except aiosmtplib.SMTPException:
                connection.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        connection = aiosmtplib.SMTP(
            hostname=s.host, port=s.port, timeout=s.timeout_secs, use_tls=s.security == "tls",
            start_tls=True if s.security == "starttls" else False,
            username=s.username, password=s.password.get_secret_value() if s.password else None,
        )
        await connection.connect()
        return connection

    async def send(self, message: EmailMessage, sender: str, recipient: str, tags: dict[str, str]) -> None:
        """Deliver one message; RetryableError (4xx, not connected) or RejectedError (5xx, unknown outcome).

        `tags` travel as headers only with SES; the message itself carries the job in X-Hub-* headers.
        """
        async with self._slots:
            connection = self._idle.pop() if self._idle else None
            try:
                if connection is None or not connection.is_connected:
                    connection = await self._connect()
                # Envelope first: a refusal here means nothing was handed over, so a resend is safe.
                await connection.mail(sender)
                await connection.rcpt(recipient)
            except aiosmtplib.SMTPResponseException as err:
                _discard(connection)
                raise _by_reply_code(err) from err
            except (aiosmtplib.SMTPException, OSError) as err:
                _discard(connection)
                raise RetryableError(f"SMTP {type(err).__name__}: {err}") from err
            try:
                await connection.data(message.as_bytes())
            except aiosmtplib.SMTPResponseException as err:
                _discard(connection)
                raise _by_reply_code(err) from err
            except (aiosmtplib.SMTPException, OSError) as err:
                # The message may have been accepted before the connection broke: no blind resend
                # (docs/reference/idempotency.md#per-destination).
                _discard(connection)
                raise RejectedError(DELIVERY_UNKNOWN, f"SMTP {type(err).__name__} during DATA: {err}") from err
            self._idle.append(connection)


def _by_reply_code(err: aiosmtplib.SMTPResponseException) -> RetryableError | RejectedError:
    """4xx replies (421/450/451/452) are transient, 5xx (550/553/554) permanent (docs/reference/email.md#smtp)."""
    text = f"SMTP {err.code}: {err.message}"
    if 400 <= err.code < 500:
        return RetryableError(text, throttled=err.code in (421, 450, 451, 452))
    return RejectedError(f"smtp_{err.code}", text)


def _discard(connection: aiosmtplib.SMTP | None) -> None:
    if connection is not None:
        connection.close()
