"""The lean request path sends byte-for-byte what botocore sends, and reads errors as botocore does."""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

import botocore.session
import pytest
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import get_session
from botocore.credentials import CredentialProvider
from botocore.serialize import create_serializer
from hypothesis import example, given
from hypothesis import strategies as st

from connectors.destinations.personalize.api import open_ingest_api
from connectors.destinations.personalize.wire import encode_body, parse_error, sent_at_wire
from connectors.aws import AwsClients
from personalize_hub.config import AwsConfig
from hub.errors import RejectedError, RetryableError

# Headers SDKs add for their own telemetry; SigV4 does not sign them (botocore/auth.py
# SIGNED_HEADERS_BLACKLIST, and they are added after signing), so they may differ. Nothing else may.
SDK_TELEMETRY_HEADERS = {"user-agent", "amz-sdk-invocation-id", "amz-sdk-request"}

EVENTS = {
    "trackingId": "tracker-1",
    "userId": "user-ü-1",  # non-ASCII: botocore escapes it (json.dumps ensure_ascii)
    "sessionId": "session-1",
    "eventList": [
        {"eventId": "e1", "eventType": "Product Viewed", "sentAt": 1_704_067_200.123456789, "itemId": "sku-1",
         "properties": json.dumps({"price": "12.5", "category": "Küche|Bad"}), "eventValue": 12.5},
        {"eventId": "e2", "eventType": "Product Added", "sentAt": 1_704_067_200.0, "itemId": "sku-2",
         "impression": ["sku-1", "sku-2", "sku-3"], "recommendationId": "RID-1", "eventValue": 3},
        {"eventId": "e3", "eventType": "Order Completed", "sentAt": 1_704_067_201, "itemId": "sku-3",
         "metricAttribution": {"eventAttributionSource": "email"}},
        {"eventId": "e4", "eventType": "Product Viewed", "sentAt": 1_704_067_201.9999996, "itemId": "sku-4"},
        {"eventId": "e5", "eventType": "Product Viewed", "sentAt": 0.000001, "itemId": "sku-5"},
    ],
}
ANONYMOUS_EVENTS = {"trackingId": "tracker-1", "sessionId": "anon-session",
                    "eventList": [{"eventId": "e9", "eventType": "Product Viewed", "sentAt": 1.5, "itemId": "x"}]}
ITEMS = {"datasetArn": "arn:aws:personalize:eu-west-1:000000000000:dataset/shop/ITEMS",
         "items": [{"itemId": "sku-1", "properties": json.dumps({"price": 1.5, "genres": "Horror|Action"})},
                   {"itemId": "sku-2", "properties": json.dumps({"title": "Ça va \"quoted\" \\ \u2603"})}]}
USERS = {"datasetArn": "arn:aws:personalize:eu-west-1:000000000000:dataset/shop/USERS",
         "users": [{"userId": "u-1", "properties": json.dumps({"tier": "gold"})}]}
CALLS = [("PutEvents", EVENTS), ("PutEvents", ANONYMOUS_EVENTS), ("PutItems", ITEMS), ("PutUsers", USERS)]


@pytest.fixture
async def aws(aws_env, stub_server):
    clients = AwsClients(AwsConfig(region="eu-west-1", personalize_endpoint_url=stub_server.url))
    yield clients
    await clients.close()


@pytest.mark.parametrize(("operation", "params"), CALLS, ids=[f"{o}-{i}" for i, (o, _) in enumerate(CALLS)])
async def test_lean_requests_equal_aiobotocore_requests_on_the_wire(aws, stub_server, frozen_clock, operation, params):
    lean = await open_ingest_api(aws, "lean")
    generic = await open_ingest_api(aws, "botocore")
    await generic.call(operation, params)
    await lean.call(operation, params)

    botocore_request, lean_request = stub_server.requests
    assert lean_request.method == botocore_request.method == "POST"
    assert lean_request.path == botocore_request.path
    assert lean_request.body == botocore_request.body
    assert lean_request.headers["authorization"] == botocore_request.headers["authorization"]
    assert lean_request.headers["x-amz-date"] == "20260102T030405Z"
    assert {k: v for k, v in lean_request.headers.items() if k not in SDK_TELEMETRY_HEADERS} == {
        k: v for k, v in botocore_request.headers.items() if k not in SDK_TELEMETRY_HEADERS
    }
    assert "x-amz-security-token" in lean_request.headers  # session credentials travel too
    assert lean_request.headers["content-type"] == "application/json"


@pytest.mark.parametrize(("operation", "params"), CALLS, ids=[f"{o}-{i}" for i, (o, _) in enumerate(CALLS)])
async def test_lean_requests_equal_what_plain_botocore_prepares(aws, aws_env, frozen_clock, operation, params):
    """Against botocore itself (not aiobotocore): its prepared request, captured before it is sent."""
    prepared: list[Any] = []

    def capture(request: Any, **_: Any) -> Any:
        prepared.append(request)
        from botocore.awsrequest import AWSResponse

        return AWSResponse(request.url, 200, {}, _EmptyBody())  # answer here: nothing leaves the process

    client = botocore.session.get_session().create_client(
        "personalize-events", region_name="eu-west-1", endpoint_url=aws.personalize_endpoint_url)
    client.meta.events.register("before-send.personalize-events", capture)
    getattr(client, {"PutEvents": "put_events", "PutItems": "put_items", "PutUsers": "put_users"}[operation])(**params)

    lean = await open_ingest_api(aws, "lean")
    url, headers, body = await lean.signed_request(operation, params)
    (request,) = prepared
    assert (url, body) == (request.url, request.body)
    for name in ("Content-Type", "X-Amz-Date", "X-Amz-Security-Token", "Authorization"):
        value = request.headers[name]  # a prepared request may hold header values as bytes
        assert headers[name] == (value.decode() if isinstance(value, bytes) else value)


@pytest.mark.parametrize(("operation", "params"), CALLS, ids=[f"{o}-{i}" for i, (o, _) in enumerate(CALLS)])
def test_bodies_are_the_same_without_jsons_c_encoder(monkeypatch, operation, params):
    from connectors.destinations.personalize import wire

    accelerated = encode_body(operation, params)
    monkeypatch.setattr(wire, "c_make_encoder", None)  # as on an interpreter without json's C accelerator
    assert encode_body(operation, params) == accelerated


@given(st.one_of(
    st.floats(min_value=0, max_value=4e9, allow_nan=False),
    st.integers(0, 4_000_000_000),
    st.integers(0, 100_000_000).map(lambda micros: micros / 10**6),  # small values expose double rounding
    st.integers(1_500_000_000_000, 2_000_000_000_000).map(lambda millis: millis / 1000),  # realistic clicks
))
@example(3.426941)  # 3 + 426941 / 10**6 != 3426941 / 10**6: the rounding botocore avoids
@example(1_704_067_201.9999996)  # rounds up into the next second
@example(0.000001)
def test_sent_at_is_written_as_botocore_writes_timestamps(secs):
    serializer = create_serializer("rest-json", include_validation=False)
    expected = serializer._convert_timestamp_to_str(secs, "unixtimestamp")
    assert json.dumps(sent_at_wire(secs)) == json.dumps(expected)


def test_encoding_leaves_the_callers_record_alone():
    record = {"eventId": "e", "eventType": "t", "sentAt": 1.0, "eventValue": math.inf}
    body = json.loads(encode_body("PutEvents", {"trackingId": "t", "sessionId": "s", "eventList": [record]}))
    assert body["eventList"][0]["sentAt"] == 1 and body["eventList"][0]["eventValue"] == "Infinity"
    assert record == {"eventId": "e", "eventType": "t", "sentAt": 1.0, "eventValue": math.inf}


async def test_an_unencodable_request_is_rejected_not_sent(aws, stub_server):
    lean = await open_ingest_api(aws, "lean")
    params = {"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "t", "sentAt": "yesterday"}]}
    with pytest.raises(RejectedError) as raised:
        await lean.call("PutEvents", params)
    assert raised.value.reason == "invalid_input" and "sentAt" in raised.value.message
    assert stub_server.requests == []


class _EmptyBody:
    def stream(self, **_: Any) -> Any:
        return iter(())


ERROR_ANSWERS = [
    (429, {"x-amzn-ErrorType": "ThrottlingException"}, b'{"message": "Rate exceeded"}'),
    (400, {"x-amzn-ErrorType": "InvalidInputException:http://internal.amazon.com/coral/x/"},
     b'{"__type": "InvalidInputException", "message": "properties is not valid JSON"}'),
    (400, {}, b'{"__type": "com.amazonaws.personalize#InvalidInputException", "message": "bad"}'),
    (404, {}, b'{"code": "ResourceNotFoundException", "Message": "No event tracker has trackingId t"}'),
    (500, {}, b""),
    (503, {"Content-Type": "text/html"}, b"<html>busy</html>"),
    (400, {}, b"{}"),
]


@pytest.mark.parametrize(("status", "headers", "body"), ERROR_ANSWERS)
async def test_both_paths_classify_every_error_answer_alike(aws, stub_server, status, headers, body):
    stub_server.answer = lambda request: (status, headers, body)
    outcomes = []
    for path in ("lean", "botocore"):
        api = await open_ingest_api(aws, path)
        with pytest.raises((RetryableError, RejectedError)) as raised:
            await api.call("PutEvents", ANONYMOUS_EVENTS)
        error = raised.value
        outcomes.append((type(error), getattr(error, "reason", None), getattr(error, "throttled", None), str(error)))
    assert outcomes[0] == outcomes[1]


def test_error_code_is_read_from_header_then_body_keys():
    assert parse_error(400, {"x-amzn-ErrorType": "A:http://x"}, b'{"__type": "B"}') == ("A", "")
    assert parse_error(400, {}, b'{"code": "C", "__type": "B", "message": "m"}') == ("C", "m")
    assert parse_error(404, {}, b'{"__type": "ns#B", "Message": "M"}') == ("B", "M")
    assert parse_error(502, {}, b"<html>") == (None, "Bad Gateway")
    assert parse_error(400, {}, b"[1]") == (None, "")
    assert parse_error(503, {"x-amzn-ErrorType": "X"}, b"") == (None, "Service Unavailable")


class _RotatingCredentials(CredentialProvider):
    """A credential source in the session's chain whose keys expire at once and rotate on every refresh."""

    METHOD = "rotating-test"

    def __init__(self) -> None:
        super().__init__()
        self.issued = 0

    async def _fetch(self) -> dict[str, str]:
        self.issued += 1
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
        return {"access_key": f"AKIDROTATED{self.issued}", "secret_key": "secret", "token": f"token-{self.issued}",
                "expiry_time": expiry.isoformat()}

    async def load(self) -> AioRefreshableCredentials:
        return AioRefreshableCredentials.create_from_metadata(await self._fetch(), self._fetch, self.METHOD)


async def test_lean_path_signs_with_refreshed_credentials_from_the_session_chain(aws_env, stub_server):
    session = get_session()
    provider = _RotatingCredentials()
    session.get_component("credential_provider").insert_before("env", provider)
    aws = AwsClients(AwsConfig(region="eu-west-1", personalize_endpoint_url=stub_server.url), session=session)
    try:
        lean = await open_ingest_api(aws, "lean")
        await lean.call("PutUsers", USERS)
        await lean.call("PutUsers", USERS)
    finally:
        await aws.close()
    keys = [r.headers["authorization"].split("Credential=")[1].split("/")[0] for r in stub_server.requests]
    tokens = [r.headers["x-amz-security-token"] for r in stub_server.requests]
    assert keys[0] != keys[1] and all(k.startswith("AKIDROTATED") for k in keys)  # refreshed, never env's
    assert tokens == [f"token-{k.removeprefix('AKIDROTATED')}" for k in keys]
