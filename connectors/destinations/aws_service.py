"""One aiobotocore client per destination: the hub's shared client, or its own for a region/endpoint override."""

from __future__ import annotations

import os
from typing import Any

from connectors.aws import AwsClients


class ServiceClient:
    """Opens the client on first use; closes only what it opened itself."""

    def __init__(self, service: str, aws: AwsClients | None, *, region: str | None = None,
                 endpoint_url: str | None = None):
        self.service = service
        overridden = bool(region or endpoint_url)
        self._shared = aws if aws is not None and not overridden else None
        self._region, self._endpoint_url = region, endpoint_url
        self._own: AwsClients | None = None
        self._client: Any = None

    async def get(self) -> Any:
        if self._client is None:
            if self._shared is not None:
                self._client = await self._shared.client(self.service)
            else:
                self._own = AwsClients()  # botocore's own resolution: AWS_* environment, profiles, roles
                self._own.region = self._region or os.environ.get("AWS_DEFAULT_REGION") or self._own.region
                if self._endpoint_url:
                    self._own.endpoint_url = self._endpoint_url
                self._client = await self._own.client(self.service)
        return self._client

    async def close(self) -> None:
        if self._own is not None:
            await self._own.close()
            self._own = None
        self._client = None
