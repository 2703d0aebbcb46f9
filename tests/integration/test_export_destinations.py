"""Export destinations over real protocols: Braze stand-in (HTTP), aiosmtpd, moto SES and S3, a webhook receiver."""

from __future__ import annotations

import mailbox
from email import message_from_bytes, policy

import boto3
import httpx
import orjson
import pytest

from connectors.destinations.braze import BrazeUsers, BrazeUsersConfig
from connectors.destinations.email import Email, EmailConfig
from connectors.destinations.s3 import S3Export, S3ExportConfig
from connectors.destinations.webhook import Webhook, WebhookConfig
from hub.connector import Context, Outcome
from hub.delivery.retry import RetryPolicy
from tests.fixtures.braze_standin import BrazeStandin
from tests.fixtures.exports import CATALOG, deliver, export_event
from tests.fixtures.services import free_port
from tests.fixtures.threaded_http import ThreadedServer
from tests.fixtures.webhook_receiver import Receiver

pytestmark = pytest.mark.integration

# Enough budget to wait out a 1 s rate-limit window a few times, still bounded.
PATIENT = RetryPolicy(base_delay_secs=0.01, max_delay_secs=0.05, max_attempts=6, max_elapsed_secs=30)


def braze(standin: BrazeStandin, **config) -> BrazeUsers:
    settings = BrazeUsersConfig(type="braze", rest_url=standin.url, api_key=standin.api_key, **config)
    return BrazeUsers(settings, Context())


# -- Braze ---------------------------------------------------------------------------------------


async def test_braze_profiles_get_ranked_items_with_metadata_in_requests_of_at_most_75(braze_standin):
    users = [f"user-{n}" for n in range(300)]
    settlements = await deliver(braze(braze_standin), [export_event(u, ("i3", "i1")) for u in users])
    assert {s.outcome for s in settlements} == {Outcome.DELIVERED}
    state = braze_standin.state
    assert set(state.statuses) == {201}  # the stand-in answers 400 past 75 objects: none happened
    assert state.objects == 300 and state.requests >= 4
    profile = state.profiles["user-7"]
    assert profile["recommended_item_ids"] == ["i3", "i1"]
    assert profile["recommended_items"][0] == {"id": "i3", **CATALOG["i3"]}


async def test_the_standin_refuses_more_than_75_objects(braze_standin):
    async with httpx.AsyncClient(base_url=braze_standin.url,
                                 headers={"Authorization": f"Bearer {braze_standin.api_key}"}) as http:
        answer = await http.post("/users/track", json={"attributes": [{"external_id": f"u{n}"} for n in range(76)]})
    assert answer.status_code == 400 and answer.json()["message"] == "Max Input Length Exceeded"


async def test_rate_limited_exports_honour_retry_after_and_all_arrive_once():
    # 4 requests per 1 s window, 2 users per request, 20 requests' worth: most batches meet a 429.
    standin = BrazeStandin(requests_per_window=4, window_secs=1).start()
    try:
        users = [f"r{n}" for n in range(40)]
        destination = braze(standin, batch={"max_events": 2, "max_in_flight": 4})
        settlements = await deliver(destination, [export_event(u) for u in users], retry=PATIENT)
    finally:
        standin.stop()
    assert {s.outcome for s in settlements} == {Outcome.DELIVERED}
    assert standin.state.statuses[429] > 0
    assert dict(standin.state.attribute_writes) == {u: 1 for u in users}  # a 429 processes nothing


async def test_a_429_waits_for_the_window_the_headers_announce():
    # One request per 2 s window, one user per request, one at a time: each later user meets one 429
    # and, waiting as told, gets through on the next try. Backoff alone (≤ 50 ms a try) would spend
    # all 4 attempts inside the window and settle as RETRY, or meet 429 several times.
    standin = BrazeStandin(requests_per_window=1, window_secs=2).start()
    try:
        destination = braze(standin, batch={"max_events": 1, "max_in_flight": 1})
        settlements = await deliver(destination, [export_event(u) for u in ("a", "b", "c")],
                                    retry=RetryPolicy(base_delay_secs=0.01, max_delay_secs=0.05, max_attempts=4,
                                                      max_elapsed_secs=30))
    finally:
        standin.stop()
    assert [s.outcome for s in settlements] == [Outcome.DELIVERED] * 3
    assert standin.state.statuses[429] <= 2 and standin.state.statuses[201] == 3


async def test_partial_success_rejects_only_the_invalid_user(braze_standin):
    braze_standin.invalid_external_ids = frozenset({"bad-user"})
    users = ["ok-1", "bad-user", "ok-2"]
    settlements = await deliver(braze(braze_standin, batch={"max_in_flight": 1}),
                                [export_event(u) for u in users])
    assert [(s.outcome, s.reason) for s in settlements] == [
        (Outcome.DELIVERED, None), (Outcome.REJECTED, "braze_invalid_object"), (Outcome.DELIVERED, None)]
    assert braze_standin.state.requests == 1 and set(braze_standin.state.profiles) == {"ok-1", "ok-2"}


async def test_server_errors_are_retried_until_delivered(braze_standin):
    braze_standin.fail_next(503, times=2)
    (settlement,) = await deliver(braze(braze_standin), [export_event("flaky")], retry=PATIENT)
    assert settlement.outcome is Outcome.DELIVERED
    assert braze_standin.state.statuses[503] == 2 and "flaky" in braze_standin.state.profiles


async def test_campaign_sends_carry_the_items_50_recipients_at_most(braze_standin):
    users = [f"c{n}" for n in range(120)]
    destination = braze(braze_standin, mode="campaign", campaign_id="weekly-picks")
    settlements = await deliver(destination, [export_event(u, ("i2",)) for u in users])
    assert {s.outcome for s in settlements} == {Outcome.DELIVERED}
    sends = braze_standin.state.sends
    assert sorted(s.external_user_id for s in sends) == sorted(users)
    assert {s.campaign_or_canvas_id for s in sends} == {"weekly-picks"}
    assert sends[0].properties["recommended_items"] == [{"id": "i2", **CATALOG["i2"]}]
    per_request: dict[str, int] = {}
    for send in sends:
        per_request[send.dispatch_id] = per_request.get(send.dispatch_id, 0) + 1
    assert max(per_request.values()) <= 50 and set(braze_standin.state.statuses) == {201}


# -- Email ---------------------------------------------------------------------------------------


async def test_smtp_emails_carry_each_users_item_names(smtp_server, unique_name):
    run = unique_name("run")
    config = EmailConfig(type="email", from_address="picks@shop.example", subject="Your picks ({{ run_id }})",
                         transport={"kind": "smtp", "host": smtp_server.host, "port": smtp_server.port,
                                    "security": "none"})
    events = [export_event("ann", ("i1", "i2"), email="ann@example.test", run_id=run),
              export_event("bob", ("i3",), email="bob@example.test", run_id=run),
              export_event("nomail", ("i3",), run_id=run)]
    settlements = await deliver(Email(config, Context()), events)
    assert [s.outcome for s in settlements] == [Outcome.DELIVERED, Outcome.DELIVERED, Outcome.REJECTED]
    stored = {m["X-RcptTo"]: m for m in mailbox.Maildir(smtp_server.maildir, create=False)
              if m["Subject"] == f"Your picks ({run})"}
    assert set(stored) == {"ann@example.test", "bob@example.test"}
    ann = message_from_bytes(stored["ann@example.test"].as_bytes(), policy=policy.default)
    text = ann.get_body(("plain",)).get_content()
    html = ann.get_body(("html",)).get_content()
    assert "Trail Runner 2" in text and "Wool Socks <3-pack>" in text and "Rain Shell" not in text
    assert "Wool Socks &lt;3-pack&gt;" in html
    bob = message_from_bytes(stored["bob@example.test"].as_bytes(), policy=policy.default)
    assert "Rain Shell" in bob.get_body(("plain",)).get_content()


@pytest.fixture
def moto_ses():
    """An in-process moto server, so the test can read SES's sent messages (docs/reference/platform.md#moto-for-s3-and-ses)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


async def test_ses_sends_the_rendered_message_and_rejects_an_unverified_sender(moto_ses, monkeypatch, unique_name):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sender = f"{unique_name('picks')}@shop.example"
    boto3.client("sesv2", endpoint_url=moto_ses, region_name="us-east-1").create_email_identity(EmailIdentity=sender)

    def email(from_address: str) -> Email:
        return Email(EmailConfig(type="email", from_address=from_address, transport={
            "kind": "ses", "region": "us-east-1", "endpoint_url": moto_ses}), Context())

    settlements = await deliver(email(sender), [export_event("ann", ("i3", "i1"), email="ann@example.test")])
    assert settlements[0].outcome is Outcome.DELIVERED
    sent = [m for m in ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages if m.source == sender]
    assert len(sent) == 1 and set(sent[0].destinations) == {"ann@example.test"}
    message = message_from_bytes(sent[0].raw_data.encode(), policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    assert text.index("Rain Shell") < text.index("Trail Runner 2")
    (unverified,) = await deliver(email("stranger@elsewhere.example"), [export_event("bob", email="bob@example.test")])
    assert (unverified.outcome, unverified.reason) == (Outcome.REJECTED, "ses_message_rejected")


# -- S3 ------------------------------------------------------------------------------------------


async def test_s3_parts_are_written_once_and_listed_in_the_manifest(aws_endpoint_url, aws_region, s3_bucket):
    config = S3ExportConfig(type="s3", bucket=s3_bucket, endpoint_url=aws_endpoint_url, region=aws_region,
                            batch={"max_events": 40})
    destination = S3Export(config, Context())
    events = [export_event(f"s{n}") for n in range(100)]
    settlements = await deliver(destination, events)
    assert {s.outcome for s in settlements} == {Outcome.DELIVERED}
    await destination.start()
    first_batch = events[:3]
    await destination.send(first_batch)
    await destination.send(first_batch)  # resent: moto enforces If-None-Match, the part stays as written
    manifest = await destination.write_manifest("weekly_email", "weekly_email-20260105T060000")
    await destination.close()
    s3 = boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    parts = [k for k in keys if "/part-" in k]
    assert manifest["rows"] == 103 and sorted(p["key"] for p in manifest["parts"]) == sorted(parts)
    users = [orjson.loads(line)["userId"] for key in parts
             for line in s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read().splitlines()]
    assert sorted(users) == sorted([f"s{n}" for n in range(100)] + ["s0", "s1", "s2"])
    assert "exports/weekly_email/weekly_email-20260105T060000/_manifest.json" in keys


async def test_s3_multipart_upload_of_a_large_part(aws_endpoint_url, aws_region, s3_bucket):
    mib = 1024 * 1024
    config = S3ExportConfig(type="s3", bucket=s3_bucket, endpoint_url=aws_endpoint_url, region=aws_region,
                            format="csv", csv_columns=["name"], multipart_threshold_bytes=5 * mib,
                            multipart_part_bytes=5 * mib)
    destination = S3Export(config, Context())
    events = [export_event(f"m{n}", [f"item-{k}-{'q' * 60}" for k in range(100)]) for n in range(900)]
    await destination.send(events)  # ≈ 7.5 MB of CSV: two pieces
    await destination.close()
    s3 = boto3.client("s3", endpoint_url=aws_endpoint_url, region_name=aws_region)
    (entry,) = s3.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert entry["Size"] > 5 * mib and "-" in s3.head_object(Bucket=s3_bucket, Key=entry["Key"])["ETag"]
    body = s3.get_object(Bucket=s3_bucket, Key=entry["Key"])["Body"].read().decode()
    assert body.count("\n") == 1 + 900 * 100 and body.startswith("user_id,rank,item_id,score,name\n")


# -- Webhook -------------------------------------------------------------------------------------


async def test_webhooks_are_verified_by_the_receiver_and_retries_keep_their_id():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    receiver = Receiver(secret, fail_first=1)
    server = ThreadedServer(receiver.app, "webhook-receiver").start()
    try:
        config = WebhookConfig(type="webhook", url=f"{server.url}/hook", secret=secret, allow_private_networks=True)
        settlements = await deliver(Webhook(config, Context()), [export_event(f"w{n}") for n in range(5)])
        wrong = WebhookConfig(type="webhook", url=f"{server.url}/hook", allow_private_networks=True,
                              secret="whsec_" + "QUJD" * 8)
        (refused,) = await deliver(Webhook(wrong, Context()), [export_event("w9")])
    finally:
        server.stop()
    assert {s.outcome for s in settlements} == {Outcome.DELIVERED}
    ids = [f"weekly_email-20260105T060000:w{n}" for n in range(5)]
    assert sorted(receiver.delivered) == ids
    assert sorted(receiver.attempts) == sorted(ids * 2)  # each id retried once, unchanged
    assert receiver.delivered[ids[2]]["data"]["userId"] == "w2"
    assert (refused.outcome, refused.reason) == (Outcome.REJECTED, "unauthorized")

