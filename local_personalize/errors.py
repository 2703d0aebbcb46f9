"""API errors of local_personalize and the HTTP status each one travels with (docs/reference/personalize-api.md#error-codes-and-statuses)."""

from __future__ import annotations


class ApiError(Exception):
    """An error answered as `x-amzn-ErrorType` + `{"__type", "message"}`.

    `rest_status` is the status the rest-json services (events, runtime) model; the json control plane
    carries no status in its model and AWS practice is 400 for every client error
    (docs/reference/personalize-api.md#error-codes-and-statuses).
    """

    code = "InternalFailure"
    rest_status = 500
    json_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def status_for(self, protocol: str) -> int:
        return self.json_status if protocol == "json" else self.rest_status


class InvalidInput(ApiError):
    code, rest_status, json_status = "InvalidInputException", 400, 400


class ResourceNotFound(ApiError):
    code, rest_status, json_status = "ResourceNotFoundException", 404, 400


class ResourceInUse(ApiError):
    code, rest_status, json_status = "ResourceInUseException", 409, 400


class ResourceAlreadyExists(ApiError):
    code, rest_status, json_status = "ResourceAlreadyExistsException", 400, 400


class LimitExceeded(ApiError):
    code, rest_status, json_status = "LimitExceededException", 400, 400


class InvalidNextToken(ApiError):
    code, rest_status, json_status = "InvalidNextTokenException", 400, 400


class UnknownOperation(ApiError):
    # What AWS answers for an X-Amz-Target it does not know.
    code, rest_status, json_status = "UnknownOperationException", 400, 400


class Throttling(ApiError):
    # 429 so that botocore's retry logic recognises it by status as well as by code
    # (docs/reference/personalize-api.md#error-codes-and-statuses).
    code, rest_status, json_status = "ThrottlingException", 429, 429


class InternalFailure(ApiError):
    code, rest_status, json_status = "InternalFailure", 500, 500


class TooManyTags(ApiError):
    code, rest_status, json_status = "TooManyTagsException", 400, 400


class RequestTooLarge(ApiError):
    # Not in the service models: what an HTTP front answers for a body above its limit.
    code, rest_status, json_status = "RequestEntityTooLargeException", 413, 413
