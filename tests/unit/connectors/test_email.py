"""Email destination: rendering (escaping, StrictUndefined), headers, and SES/SMTP error classification."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from pydantic import ValidationError

from connectors.destinations.email import Email, EmailConfig
from connectors.destinations.email.ses import SesSettings, SesTransport
from connectors.destinations.email.smtp import _by_reply_code
from hub.connector import Context, Outcome
from hub.errors import RejectedError, RetryableError
from tests.fixtures.exports import deliver, export_event


class FakeTransport:
    """Collects messages instead of sending them; `fail` is raised for the listed recipients."""

    def __init__(self, fail: dict[str, Exception] | None = None):
        self.sent: list[tuple[EmailMessage, str, str, dict[str, str]]] = []
        self.fail = fail or {}

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, message, sender, recipient, tags):
        if recipient in self.fail:
            raise self.fail[recipient]
        self.sent.append((message, sender, recipient, tags))


def email_destination(transport, **config) -> Email:
    settings = EmailConfig(type="email", from_address="picks@shop.example", from_name="Shop",
                           transport={"kind": "smtp", "host": "127.0.0.1"}, **config)
    return Email(settings, Context(), transport=transport)


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return text, html


async def test_each_user_gets_their_items_in_text_and_escaped_html():
    transport = FakeTransport()
    events = [export_event("u1", ("i2", "i1"), email="ann@example.com"),
              export_event("u2", ("i3",), email="bob@example.com")]
    settlements = await deliver(email_destination(transport), events)
    assert {s.outcome for s in settlements} == {Outcome.DELIVERED}
    by_recipient = {recipient: message for message, _, recipient, _ in transport.sent}
    text, html = parts(by_recipient["ann@example.com"])
    assert text.index("Wool Socks <3-pack>") < text.index("Trail Runner 2")  # rank order kept
    assert "Wool Socks &lt;3-pack&gt;" in html and "<3-pack>" not in html
    assert '<a href="https://shop.example/p/i1">' in html
    assert "Rain Shell" not in text
    bob_text, _ = parts(by_recipient["bob@example.com"])
    assert "Rain Shell" in bob_text and "Trail Runner" not in bob_text


async def test_headers_are_set_and_the_message_id_is_stable_per_export():
    transport = FakeTransport()
    destination = email_destination(transport, subject="{{ items|length }} picks for {{ attributes.first_name }}",
                                    reply_to="help@shop.example")
    event = export_event("u1", email="ann@example.com", attributes={"first_name": "Ann"})
    await destination.send([event])
    await destination.send([event])
    await destination.send([export_event("u2", email="bob@example.com", attributes={"first_name": "Bob"})])
    (first, sender, _, tags), (again, *_), (other, *_) = transport.sent
    assert first["Subject"] == "3 picks for Ann" and other["Subject"] == "3 picks for Bob"
    assert first["From"] == "Shop <picks@shop.example>" and first["Reply-To"] == "help@shop.example"
    assert sender == "picks@shop.example" and tags == {"job": "weekly_email", "run_id": "weekly_email-20260105T060000"}
    assert first["Message-ID"] == again["Message-ID"] != other["Message-ID"]
    assert first["Message-ID"].endswith("@shop.example>")


async def test_users_without_an_address_or_with_a_header_breaking_one_are_rejected_alone():
    transport = FakeTransport()
    injected = export_event("u3")
    injected.record["email"] = "eve@example.com\nBcc: everyone@example.com"
    settlements = await deliver(email_destination(transport),
                                [export_event("u1"), export_event("u2", email="bob@example.com"), injected])
    assert (settlements[0].outcome, settlements[0].reason) == (Outcome.REJECTED, "missing_email")
    assert settlements[1].outcome is Outcome.DELIVERED
    assert (settlements[2].outcome, settlements[2].reason) == (Outcome.REJECTED, "invalid_export_record")
    assert [recipient for _, _, recipient, _ in transport.sent] == ["bob@example.com"]


async def test_custom_templates_with_variables_and_strict_undefined(tmp_path):
    text = tmp_path / "picks.txt.j2"
    text.write_text("Hi from {{ shop }}: {% for item in items %}{{ item.name }}|{% endfor %}")
    html = tmp_path / "picks.html.j2"
    html.write_text("<b>{{ shop }}</b>{% for item in items %}<i>{{ item.name }}</i>{% endfor %}")
    transport = FakeTransport()
    destination = email_destination(transport, text_template=text, html_template=html,
                                    template_vars={"shop": "Trail & Co"})
    await destination.send([export_event("u1", ("i1", "i3"), email="ann@example.com")])
    body_text, body_html = parts(transport.sent[0][0])
    assert body_text == "Hi from Trail & Co: Trail Runner 2|Rain Shell|\n"
    assert "<b>Trail &amp; Co</b><i>Trail Runner 2</i><i>Rain Shell</i>" in body_html
    with pytest.raises(RejectedError) as failure:  # "blurb" is not a column of this job
        await email_destination(transport, subject="{{ items[0].blurb }}").send(
            [export_event("u1", email="ann@example.com")])
    assert failure.value.reason == "template_error" and "blurb" in failure.value.message


async def test_text_only_messages_when_html_is_off():
    transport = FakeTransport()
    await email_destination(transport, send_html=False).send([export_event("u1", email="ann@example.com")])
    message = transport.sent[0][0]
    assert not message.is_multipart() and "Trail Runner 2" in message.get_content()


def test_config_refuses_missing_templates_and_bad_addresses(tmp_path):
    base = {"type": "email", "transport": {"kind": "ses"}}
    with pytest.raises(ValidationError, match="does not exist"):
        EmailConfig(**base, from_address="a@b.c", text_template=tmp_path / "nope.j2")
    with pytest.raises(ValidationError, match="not an email address"):
        EmailConfig(**base, from_address="shop")
    assert Email(EmailConfig(**base, from_address="a@b.c"), Context()).idempotent is False


@pytest.mark.parametrize(("code", "expected", "reason"), [
    (421, RetryableError, None), (451, RetryableError, None), (452, RetryableError, None),
    (550, RejectedError, "smtp_550"), (554, RejectedError, "smtp_554"),
])
def test_smtp_replies_4xx_transient_5xx_permanent(code, expected, reason):
    error = _by_reply_code(aiosmtplib.SMTPResponseException(code, "reply"))
    assert isinstance(error, expected) and getattr(error, "reason", None) == reason


class FakeSes:
    def __init__(self, error: Exception | None = None):
        self.error = error
        self.calls: list[dict] = []

    async def send_email(self, **params):
        self.calls.append(params)
        if self.error:
            raise self.error
        return {"MessageId": "m-1"}


class FakeAws:
    def __init__(self, client):
        self._client = client

    async def client(self, service):
        assert service == "sesv2"
        return self._client


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "boom"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "SendEmail")


async def test_ses_sends_the_raw_message_with_sanitised_tags():
    ses = FakeSes()
    transport = SesTransport(SesSettings(kind="ses", configuration_set="feedback"), FakeAws(ses))
    message = EmailMessage()
    message.set_content("hello")
    await transport.send(message, "a@b.c", "c@d.e", {"job": "weekly email", "run_id": "r:1"})
    (call,) = ses.calls
    assert call["Destination"] == {"ToAddresses": ["c@d.e"]} and call["ConfigurationSetName"] == "feedback"
    assert call["Content"]["Raw"]["Data"] == message.as_bytes()
    assert call["EmailTags"] == [{"Name": "job", "Value": "weekly_email"}, {"Name": "run_id", "Value": "r_1"}]


@pytest.mark.parametrize(("error", "expected", "reason", "throttled"), [
    (client_error("TooManyRequestsException", 429), RetryableError, None, True),
    (client_error("LimitExceededException", 400), RetryableError, None, True),
    (client_error("InternalFailure", 500), RetryableError, None, False),
    (client_error("MessageRejected", 400), RejectedError, "ses_message_rejected", None),
    (client_error("MailFromDomainNotVerifiedException", 400), RejectedError, "ses_mail_from_domain_not_verified", None),
    (ReadTimeoutError(endpoint_url="https://email"), RejectedError, "delivery_unknown", None),
])
async def test_ses_errors_are_classified_per_the_documented_codes(error, expected, reason, throttled):
    transport = SesTransport(SesSettings(kind="ses"), FakeAws(FakeSes(error)))
    message = EmailMessage()
    message.set_content("x")
    with pytest.raises(expected) as raised:
        await transport.send(message, "a@b.c", "c@d.e", {})
    assert getattr(raised.value, "reason", None) == reason
    assert getattr(raised.value, "throttled", None) == throttled


async def test_pickup_transport_writes_one_eml_per_user_and_a_resend_overwrites(tmp_path):
    settings = EmailConfig(type="email", from_address="picks@shop.example",
                           transport={"kind": "pickup", "directory": str(tmp_path / "outbox")})
    destination = Email(settings, Context())
    events = [export_event("u1", email="u1@shop.example"), export_event("u2", email="u2@shop.example")]
    for _ in range(2):  # the second export of the same run resends the same messages
        settlements = await deliver(destination, events)
        assert {s.outcome for s in settlements} == {Outcome.DELIVERED}
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 2 and not list((tmp_path / "outbox").glob("*.partial"))
    from email import message_from_bytes
    from email.policy import default

    message = message_from_bytes(files[0].read_bytes(), policy=default)
    assert message["To"].addresses[0].addr_spec in {"u1@shop.example", "u2@shop.example"}
