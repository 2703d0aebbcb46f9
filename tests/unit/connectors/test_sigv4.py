"""The lean path's SigV4 signer gives the headers botocore's SigV4Auth gives, with its signing key kept per day."""

from __future__ import annotations

import datetime

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.sigv4 import JsonPostSigner

ENDPOINTS = ["https://personalize-events.eu-west-1.amazonaws.com", "http://127.0.0.1:8765",
             "https://Example.COM:443/prefix/", "http://[::1]:9000/a b"]


def botocore_headers(url: str, body: bytes, credentials: Credentials, region: str, service: str) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    botocore.auth.SigV4Auth(credentials, service, region).add_auth(request)
    return dict(request.headers.items())


def frozen(monkeypatch: pytest.MonkeyPatch, when: datetime.datetime) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda remove_tzinfo=True: when)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("token", [None, "session token/with+chars=="])
def test_headers_equal_botocores(monkeypatch, endpoint, token):
    frozen(monkeypatch, datetime.datetime(2026, 1, 2, 3, 4, 5))
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    base = endpoint.rstrip("/")
    signer = JsonPostSigner(base, region="eu-west-1", service="personalize")
    for path in ("/events", "/items"):
        body = b'{"trackingId": "t", "eventList": []}'
        expected = botocore_headers(base + path, body, credentials, "eu-west-1", "personalize")
        assert signer.headers(base + path, body, credentials) == expected
        assert list(signer.headers(base + path, body, credentials)) == list(expected)  # the same order


@settings(max_examples=50, deadline=None)
@given(body=st.binary(max_size=300), secret=st.text(min_size=1, max_size=40),
       day=st.integers(0, 3), token=st.one_of(st.none(), st.text("abcXYZ019+/= ", min_size=1, max_size=30)))
def test_the_kept_signing_key_follows_the_day_and_the_secret(body, secret, day, token):
    when = datetime.datetime(2026, 12, 30, 23, 59, 59) + datetime.timedelta(days=day)
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda remove_tzinfo=True: when
    try:
        signer = JsonPostSigner("https://personalize-events.us-east-1.amazonaws.com", region="us-east-1",
                                service="personalize")
        url = "https://personalize-events.us-east-1.amazonaws.com/events"
        rotated = Credentials("AKID2", secret + "x", token)
        for credentials in (Credentials("AKID1", secret, token), rotated, Credentials("AKID1", secret, token)):
            assert signer.headers(url, body, credentials) == botocore_headers(
                url, body, credentials, "us-east-1", "personalize")
    finally:
        botocore.auth.get_current_datetime = original
