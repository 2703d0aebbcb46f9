"""errors.py: every Personalize answer and exception lands in the right outcome."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from botocore import exceptions as boto

from connectors.destinations.personalize.errors import ServiceMisconfigured, classify, classify_exception
from hub.errors import RejectedError, RetryableError

TABLE = [
    # status, code, outcome class, reason, throttled
    (429, "ThrottlingException", RetryableError, None, True),
    (429, None, RetryableError, None, True),
    (400, "ThrottlingException", RetryableError, None, True),  # AWS's common-errors status for throttling
    (400, "TooManyRequestsException", RetryableError, None, True),
    (503, "SlowDown", RetryableError, None, True),
    (500, None, RetryableError, None, False),
    (500, "InternalFailure", RetryableError, None, False),
    (502, None, RetryableError, None, False),
    (503, "ServiceUnavailable", RetryableError, None, False),
    (408, None, RetryableError, None, False),
    (400, "InvalidInputException", RejectedError, "invalid_input", None),
    (400, "ValidationException", RejectedError, "invalid_input", None),
    (413, None, RejectedError, "too_large", None),
    (404, "ResourceNotFoundException", ServiceMisconfigured, None, False),
    (409, "ResourceInUseException", ServiceMisconfigured, None, False),
    (403, "AccessDeniedException", ServiceMisconfigured, None, False),
    (403, "InvalidSignatureException", ServiceMisconfigured, None, False),
    (400, "UnknownOperationException", ServiceMisconfigured, None, False),
    (404, None, ServiceMisconfigured, None, False),  # a wrong endpoint path, not a bad record
    (400, "SomethingNewException", ServiceMisconfigured, None, False),
]


@pytest.mark.parametrize(("status", "code", "kind", "reason", "throttled"), TABLE)
def test_classification_table(status, code, kind, reason, throttled):
    error = classify(status, code, "the service's message")
    assert type(error) is kind
    if kind is RejectedError:
        assert error.reason == reason and error.message == "the service's message"
    else:
        assert error.throttled is throttled
        assert "the service's message" in str(error)


def test_config_problems_are_retried_not_rejected():
    # Rejecting would dead-letter every record while the tracker id is wrong; retrying loses nothing.
    assert isinstance(classify(404, "ResourceNotFoundException", "No event tracker"), RetryableError)


def test_retry_after_header_is_honoured():
    assert classify(429, None, "", {"Retry-After": "2.5"}).retry_after_secs == 2.5
    assert classify(503, None, "", {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}).retry_after_secs is None


def _client_error(status: int, code: str, message: str = "m") -> boto.ClientError:
    response = {"Error": {"Code": code, "Message": message},
                "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {"retry-after": "1"}}}
    return boto.ClientError(response, "PutEvents")


@pytest.mark.parametrize(
    ("error", "kind", "detail"),
    [
        (_client_error(400, "InvalidInputException", "bad sentAt"), RejectedError, "invalid_input"),
        (_client_error(429, "ThrottlingException"), RetryableError, True),
        (_client_error(500, "500"), RetryableError, False),  # botocore's code for an answer naming none
        (_client_error(404, "ResourceNotFoundException"), ServiceMisconfigured, False),
        (boto.ParamValidationError(report="Invalid type for parameter sentAt"), RejectedError, "invalid_input"),
        (boto.NoCredentialsError(), ServiceMisconfigured, False),
        (boto.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), RetryableError, False),
        (boto.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), RetryableError, False),
        (aiohttp.ServerDisconnectedError(), RetryableError, False),
        (aiohttp.ClientConnectionError("refused"), RetryableError, False),
        (asyncio.TimeoutError(), RetryableError, False),
        (ConnectionResetError(), RetryableError, False),
    ],
)
def test_exceptions_of_either_path_are_classified(error, kind, detail):
    outcome = classify_exception(error)
    assert type(outcome) is kind
    if kind is RejectedError:
        assert outcome.reason == detail
    else:
        assert outcome.throttled is detail


def test_client_error_keeps_retry_after():
    assert classify_exception(_client_error(429, "ThrottlingException")).retry_after_secs == 1.0


def test_a_bug_is_not_disguised_as_a_send_error():
    with pytest.raises(KeyError):
        classify_exception(KeyError("eventList"))
