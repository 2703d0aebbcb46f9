"""The two request paths to personalize-events behind one `call(operation, params)`: lean (default) and aiobotocore."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

from connectors.destinations.personalize import errors
from connectors.destinations.personalize.wire import LeanIngestApi
from hub.errors import HubError

RequestPath = Literal["lean", "botocore"]

_METHODS = {"PutEvents": "put_events", "PutItems": "put_items", "PutUsers": "put_users"}


class IngestApi(Protocol):
    """Sends one operation; returns when accepted, raises a classified hub error otherwise (errors.py)."""

    async def call(self, operation: str, params: Mapping[str, Any]) -> None: ...


class BotocoreIngestApi:
    """The generic aiobotocore client: slower per call, but every botocore feature (fallback, debugging)."""

    def __init__(self, client: Any):
        self._client = client

    async def call(self, operation: str, params: Mapping[str, Any]) -> None:
        try:
            await getattr(self._client, _METHODS[operation])(**params)
        except HubError:
            raise
        except Exception as err:  # noqa: BLE001 - classify_exception re-raises what is not a send error
            raise errors.classify_exception(err) from err


async def open_ingest_api(aws: Any, request_path: RequestPath) -> IngestApi:
    """The request path `request_path` over the shared clients of `aws` (connectors.aws.AwsClients).

    The lean path takes its endpoint, region and signing name from the aiobotocore client, so both
    paths talk to the same place however botocore resolved it (config, AWS_ENDPOINT_URL_*, partition).
    """
    client = await aws.client("personalize-events")
    if request_path == "botocore":
        return BotocoreIngestApi(client)
    meta = client.meta
    return LeanIngestApi(
        aws, endpoint_url=meta.endpoint_url, region=meta.region_name, signing_name=meta.service_model.signing_name
    )
