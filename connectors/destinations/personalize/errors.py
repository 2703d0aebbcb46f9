"""The one place Personalize ingest errors are classified into retry, reject or "fix the config".

| answer                                                          | outcome                                  |
|-----------------------------------------------------------------|------------------------------------------|
| ThrottlingException & co, HTTP 429                              | RetryableError(throttled=True)           |
| HTTP 5xx, 408, connection errors, timeouts                      | RetryableError                           |
| InvalidInputException, ValidationException, client-side checks  | RejectedError("invalid_input", message)  |
| HTTP 413                                                        | RejectedError("too_large", message)      |
| ResourceNotFound/InUse, auth errors, no credentials, other 4xx  | ServiceMisconfigured (retried, logged)   |

Why a config problem is retried rather than rejected: an unknown trackingId or datasetArn, a dataset
that is not ACTIVE yet, or bad credentials affect every record alike. Rejecting would dead-letter the
whole stream (and the runner's bisection would first split every batch down to single records); retrying
keeps everything unacknowledged at the source, so nothing is lost while an operator fixes the config,
and the destination logs an error that says so. Unknown 4xx codes are treated the same way because
Personalize models only InvalidInput as a per-record error
(docs/reference/personalize-api.md#putevents, #putitems-and-putusers); a wrong endpoint (404/UnknownOperation) is the
usual cause of the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from hub.errors import HubError, RejectedError, RetryableError

# Error codes botocore's standard retry mode treats as throttling (botocore/retries/standard.py); 429
# is throttling whatever the code (docs/reference/personalize-api.md#error-codes-and-statuses).
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown",
})
REJECTED_CODES = {
    # the only modeled PutEvents error (docs/reference/personalize-api.md#putevents)
    "InvalidInputException": "invalid_input",
    "ValidationException": "invalid_input",
    "SerializationException": "invalid_input",
}
CONFIG_CODES = frozenset({
    # unknown trackingId / datasetArn (docs/reference/personalize-api.md#error-codes-and-statuses)
    "ResourceNotFoundException",
    # dataset or tracker not ACTIVE yet (docs/reference/personalize-api.md#putitems-and-putusers)
    "ResourceInUseException",
    "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
    "IncompleteSignatureException", "MissingAuthenticationTokenException", "InvalidClientTokenId",
    "ExpiredTokenException", "ExpiredToken", "SignatureDoesNotMatch", "UnknownOperationException",
})


class ServiceMisconfigured(RetryableError):
    """Retryable, but no retry will help until an operator fixes config or credentials: log it loudly."""


def classify(status: int, code: str | None, message: str, headers: Mapping[str, str] | None = None) -> HubError:
    """The outcome of one Personalize error answer (HTTP status, parsed error code, service message)."""
    retry_after = _retry_after_secs(headers)
    described = f"{code or f'HTTP {status}'}: {message}" if message else (code or f"HTTP {status}")
    if status == 429 or code in THROTTLING_CODES:
        return RetryableError(described, throttled=True, retry_after_secs=retry_after)
    if code in REJECTED_CODES:
        return RejectedError(REJECTED_CODES[code], message or code)
    if code in CONFIG_CODES:
        return ServiceMisconfigured(described, retry_after_secs=retry_after)
    if status >= 500 or status == 408:
        return RetryableError(described, retry_after_secs=retry_after)
    if status == 413:
        return RejectedError("too_large", message or "request entity too large")
    return ServiceMisconfigured(described, retry_after_secs=retry_after)


def classify_exception(error: BaseException) -> HubError:
    """The outcome of an exception raised by either request path; re-raises what is not a send error."""
    if isinstance(error, HubError):
        return error
    from botocore import exceptions as boto

    if isinstance(error, boto.ClientError):
        response: dict[str, Any] = error.response
        meta = response.get("ResponseMetadata", {})
        details = response.get("Error", {})
        code = details.get("Code")
        status = meta.get("HTTPStatusCode") or 400
        # botocore uses the status as the code when the answer named none
        # (docs/reference/personalize-api.md#how-botocore-reads-an-error).
        return classify(status, None if code == str(status) else code, details.get("Message", ""),
                        meta.get("HTTPHeaders"))
    if isinstance(error, boto.ParamValidationError):
        return RejectedError("invalid_input", str(error))
    if isinstance(error, (boto.NoCredentialsError, boto.PartialCredentialsError, boto.CredentialRetrievalError)):
        return ServiceMisconfigured(f"no usable AWS credentials: {error}")
    if isinstance(error, (boto.HTTPClientError, boto.ConnectionError)):
        return RetryableError(f"connection failed: {error}")
    import aiohttp

    if isinstance(error, (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError, ConnectionError, OSError)):
        return RetryableError(f"connection failed: {type(error).__name__}: {error}")
    raise error


def _retry_after_secs(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: rare from AWS, and the runner's own backoff is a fine substitute
        return None
