"""Email destination: each user's recommendations rendered with Jinja2 and sent through SES or SMTP."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from connectors.aws import AwsClients
from connectors.destinations.email.pickup import PickupSettings, PickupTransport
from connectors.destinations.email.render import DEFAULT_HTML, DEFAULT_TEXT, EmailTemplates, RenderedEmail
from connectors.destinations.email.ses import SesSettings, SesTransport
from connectors.destinations.email.smtp import SmtpSettings, SmtpTransport
from connectors.formats.recommendations import USER_RECOMMENDATIONS, UserRecommendations, user_recommendations
from hub.connector import BatchPolicy, Context, ExportDestination, ExportDestinationConfig
from hub.errors import RejectedError
from hub.rows import ExportRow


class EmailConfig(ExportDestinationConfig):
    """Mails each user their recommendations: subject, text and HTML rendered from Jinja2 templates.

    Templates see `items` (each with `id`, the job's metadata columns such as name/price/url/image,
    and `score` if asked for), `user_id`, `email`, `attributes`, `job`, `run_id` and `template_vars`.
    Neither SES nor SMTP has an idempotency key: a send whose outcome is unknown is rejected as
    `delivery_unknown` instead of being sent again (docs/reference/email.md#amazon-ses-v2, #smtp;
    docs/reference/idempotency.md#per-destination).
    """

    type: Literal["email"]
    example: ClassVar[dict[str, Any]] = {
        "type": "email", "from_address": "shop@example.com",
        "transport": {"kind": "smtp", "host": "${SMTP_HOST}", "port": "${SMTP_PORT}"}}
    # One personalised message per call: SES SendEmail carries one message and SES quotas count
    # recipients, not calls (docs/reference/email.md#amazon-ses-v2); over SMTP it is one message per recipient
    # (docs/reference/email.md#smtp). So the runner's rate is messages per second: set batch.max_requests_per_sec to the
    # account's SES MaxSendRate (sandbox: 1/s). Concurrency is the number of SMTP connections / SES calls in flight.
    api_limits: ClassVar[BatchPolicy] = BatchPolicy(max_events=1, max_wait_secs=0.0, max_in_flight=8)

    transport: Annotated[SmtpSettings | SesSettings | PickupSettings, Field(discriminator="kind")] = Field(
        ..., description="How mail leaves: {kind: smtp, host, port, …}, {kind: ses, region?, …} or "
        "{kind: pickup, directory} (one .eml file per message, for previews)."
    )
    from_address: str = Field(..., description="Sender address (an SES verified identity with SES).")
    from_name: str | None = Field(None, description="Sender display name.")
    reply_to: str | None = Field(None, description="Reply-To address.")
    subject: str = Field("Picked for you", description="Subject; a Jinja2 template with the same variables.")
    text_template: Path | None = Field(None, description="Plain-text Jinja2 template; default: the shipped one.")
    html_template: Path | None = Field(
        None, description="HTML Jinja2 template (autoescaped); default: the shipped one."
    )
    send_html: bool = Field(True, description="Send an HTML alternative next to the text.")
    item_fields: list[str] | None = Field(
        None, description="Metadata columns given to templates (default: every column the job decorated with)."
    )
    include_score: bool = Field(False, description="Give templates each item's score.")
    template_vars: dict[str, Any] = Field(default_factory=dict, description="Extra variables, e.g. shop name.")

    @field_validator("text_template", "html_template")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"template {value} does not exist")
        return value

    @field_validator("from_address", "reply_to")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and "@" not in value:
            raise ValueError(f"{value!r} is not an email address")
        return value


class Email(ExportDestination):
    """Rendered recommendation emails over SES or SMTP."""

    Config = EmailConfig
    config: EmailConfig
    idempotent = False  # neither SES nor SMTP dedupes (docs/reference/idempotency.md#per-destination)

    def __init__(self, config: EmailConfig, context: Context, *, transport: Any = None):
        super().__init__(config, context)
        self.templates = EmailTemplates(
            config.subject,
            config.text_template or DEFAULT_TEXT,
            (config.html_template or DEFAULT_HTML) if config.send_html else None,
            config.template_vars,
        )
        pool = config.batch_policy().max_in_flight
        if transport is not None:  # an in-process transport (unit tests) behind the same interface
            self.transport = transport
        elif isinstance(config.transport, SmtpSettings):
            self.transport = SmtpTransport(config.transport, pool)
        elif isinstance(config.transport, PickupSettings):
            self.transport = PickupTransport(config.transport)
        else:
            self.transport = SesTransport(config.transport, context.resources.get(AwsClients))
        self._domain = config.from_address.rpartition("@")[2]

    export_rows = frozenset({USER_RECOMMENDATIONS})

    def partition_key(self, row: ExportRow) -> str:
        return row.message_id  # one message per call: every user may go concurrently

    async def start(self) -> None:
        await self.transport.start()

    async def close(self) -> None:
        await self.transport.close()

    def compose(self, row: ExportRow) -> tuple[EmailMessage, UserRecommendations]:
        """The MIME message of one export; RejectedError for a user without an address or a template failure."""
        recs = user_recommendations(row)
        if not recs.email:
            raise RejectedError("missing_email", f"user {recs.user_id} has no email in the export record")
        items = recs.template_items(self.config.item_fields, with_score=self.config.include_score)
        return self._message(row, recs, self.templates.render(recs, items)), recs

    def _message(self, row: ExportRow, recs: UserRecommendations, rendered: RenderedEmail) -> EmailMessage:
        message = EmailMessage()
        sender = Address(display_name=self.config.from_name or "", addr_spec=self.config.from_address)
        message["From"] = sender
        message["To"] = recs.email
        if self.config.reply_to:
            message["Reply-To"] = self.config.reply_to
        message["Subject"] = rendered.subject
        message["Date"] = formatdate(row.timestamp, usegmt=True)
        # The same Message-ID on a resend lets some receivers and MTAs drop the copy (docs/reference/email.md#smtp).
        digest = hashlib.sha256(row.message_id.encode()).hexdigest()[:32]
        message["Message-ID"] = f"<{digest}@{self._domain}>"
        message["X-Hub-Job"] = recs.job
        if recs.run_id:
            message["X-Hub-Run"] = recs.run_id
        message.set_content(rendered.text)
        if rendered.html is not None:
            message.add_alternative(rendered.html, subtype="html")
        return message

    async def delivery_status(self, batch: Sequence[ExportRow]) -> Sequence[bool | None]:
        """Asked of the transport when it can look a message up (pickup); SES and SMTP cannot tell."""
        delivered = getattr(self.transport, "delivered", None)
        if delivered is None:
            return [None] * len(batch)
        found: list[bool | None] = []
        for row in batch:
            try:
                message, recs = self.compose(row)
            except RejectedError:
                found.append(None)
                continue
            found.append(await delivered(message, recs.email))
        return found

    async def send(self, batch: Sequence[ExportRow]) -> None:
        (row,) = batch  # max_events is 1: one personalised message per call
        message, recs = self.compose(row)
        assert recs.email is not None
        await self.transport.send(message, self.config.from_address, recs.email,
                                  {"job": recs.job, "run_id": recs.run_id or "none"})
