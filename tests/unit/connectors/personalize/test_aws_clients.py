"""connectors/aws.py: endpoints per service, botocore retries off (the runner retries), credentials from the chain."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from connectors.aws import AwsClients
from personalize_hub.config import AwsConfig


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
    assert aws.proxy_for("https://personalize-events.us-east-1.amazonaws.com") == "http://127.0.0.1:3128"
    assert aws.proxy_for("http://127.0.0.1:8001") is None
