"""connectors/aws.py: endpoints per service, botocore retries off (the runner retries), credentials from the chain."""

from __future__ import annotations

import asyncio
import base64
import logging

import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from connectors.aws import AwsClients
from connectors.destinations.personalize.wire import LeanIngestApi
from personalize_hub.config import AwsConfig
from hub.errors import RetryableError

PUT_EVENTS = {"trackingId": "t", "sessionId": "s",
              "eventList": [{"eventId": "e1", "eventType": "Product Viewed", "sentAt": 1.5, "itemId": "i"}]}


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """An empty standard chain, as on a fresh machine: no variables, no files, no instance role."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_personalize_services_use_their_endpoint_and_others_theirs():
    aws = AwsClients(AwsConfig(region="eu-west-1", personalize_endpoint_url="http://127.0.0.1:8001",
                               endpoint_url="http://127.0.0.1:5000"))
    assert aws.endpoint_url_for("personalize-events") == "http://127.0.0.1:8001"
    assert aws.endpoint_url_for("personalize-runtime") == "http://127.0.0.1:8001"
    assert aws.endpoint_url_for("s3") == "http://127.0.0.1:5000"


def test_empty_endpoint_means_real_aws():
    # Examples interpolate ${PERSONALIZE_ENDPOINT_URL:-}: empty must not become an endpoint.
    aws = AwsClients(AwsConfig(personalize_endpoint_url="", endpoint_url=""))
    assert aws.endpoint_url_for("personalize") is None and aws.endpoint_url_for("s3") is None


async def test_botocore_does_not_retry_a_throttled_call(aws_env, stub_server):
    stub_server.answer = lambda request: (429, {"x-amzn-ErrorType": "ThrottlingException"}, b"{}")
    aws = AwsClients(AwsConfig(region="eu-west-1", personalize_endpoint_url=stub_server.url))
    try:
        client = await aws.client("personalize-events")
        assert await aws.client("personalize-events") is client  # one shared client per service
        with pytest.raises(ClientError):
            await client.put_users(datasetArn="arn:aws:personalize:eu-west-1:0:dataset/d/USERS",
                                   users=[{"userId": "u"}])
    finally:
        await aws.close()
    assert len(stub_server.requests) == 1  # one attempt: the DestinationRunner owns retries


def test_sync_clients_share_the_settings(aws_env, stub_server):
    aws = AwsClients(AwsConfig(region="eu-west-1", personalize_endpoint_url=stub_server.url))
    client = aws.sync_client("personalize")
    assert client.meta.endpoint_url == stub_server.url and client.meta.region_name == "eu-west-1"
    assert client.meta.config.retries["total_max_attempts"] == 1


async def test_credentials_come_from_the_standard_chain(aws_env):
    aws = AwsClients(AwsConfig())
    credentials = await aws.frozen_credentials()
    assert (credentials.access_key, credentials.token) == ("AKIDEXAMPLE", "session-token-example")
    session = aws.http_session()
    assert aws.http_session() is session
    await aws.close()
    assert session.closed


def test_proxies_come_from_the_environment_once_per_endpoint(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    aws = AwsClients(AwsConfig())
    assert aws.proxy_for("https://personalize-events.us-east-1.amazonaws.com").url == "http://127.0.0.1:3128"
    assert aws.proxy_for("http://127.0.0.1:8001") == (None, None)


async def test_an_authenticated_https_proxy_receives_its_credentials(aws_env, stub_server, monkeypatch):
    # The stub is the proxy: the tunnel to AWS is asked for with CONNECT, which must carry the credentials
    # (the stub cannot speak TLS inside the tunnel, so the call itself then fails as retryable).
    monkeypatch.setenv("HTTPS_PROXY", stub_server.url.replace("http://", "http://hub:p%40ss@"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    aws = AwsClients(AwsConfig(region="eu-west-1"))
    api = LeanIngestApi(aws, endpoint_url="https://personalize-events.eu-west-1.amazonaws.com", region="eu-west-1")
    try:
        with pytest.raises(RetryableError):
            await api.call("PutEvents", PUT_EVENTS)
    finally:
        await aws.close()
    [request] = stub_server.requests
    assert request.method == "CONNECT" and request.headers["host"] == "personalize-events.eu-west-1.amazonaws.com"
    assert request.headers["proxy-authorization"] == "Basic " + base64.b64encode(b"hub:p@ss").decode()


async def test_concurrent_first_calls_share_one_client(aws_env, stub_server):
    aws = AwsClients(AwsConfig(personalize_endpoint_url=stub_server.url))
    built = []
    create = aws.create_client
    aws.create_client = lambda service, **kw: (built.append(service), create(service, **kw))[1]
    try:
        first, second = await asyncio.gather(aws.client("personalize-events"), aws.client("personalize-events"))
    finally:
        await aws.close()
    assert first is second and built == ["personalize-events"]


async def test_a_local_engine_gets_dummy_credentials_said_once(no_credentials, stub_server, caplog):
    caplog.set_level(logging.INFO, logger="connectors.aws")
    aws = AwsClients(AwsConfig(personalize_endpoint_url=stub_server.url))
    try:
        assert aws.uses_local_engine
        assert (await aws.frozen_credentials()).access_key == "local-engine"
        await LeanIngestApi(aws, endpoint_url=stub_server.url, region="us-east-1").call("PutEvents", PUT_EVENTS)
        client = await aws.client("personalize-events")
        await client.put_events(**{**PUT_EVENTS, "eventList": [{**PUT_EVENTS["eventList"][0], "sentAt": 1}]})
        aws.sync_client("personalize")
    finally:
        await aws.close()
    assert [r.headers["authorization"].split("Credential=")[1][:12] for r in stub_server.requests] == [
        "local-engine", "local-engine"]
    said = [r for r in caplog.records if "dummy" in r.getMessage()]
    assert len(said) == 1 and stub_server.url in said[0].getMessage()


async def test_real_aws_without_credentials_still_fails_loudly(no_credentials):
    aws = AwsClients(AwsConfig(personalize_endpoint_url="https://personalize-events.eu-west-1.amazonaws.com"))
    assert not aws.uses_local_engine
    with pytest.raises(NoCredentialsError):
        await aws.frozen_credentials()
    await aws.close()
