"""What the CDP profile destinations share: one pooled client, lanes by user, members posted as one body."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import httpx

from connectors.destinations.http_delivery import http_client, lane_of, post_members
from connectors.formats.recommendations import USER_RECOMMENDATIONS
from hub.connector import Context, ExportDestination, ExportDestinationConfig
from hub.rows import ExportRow


class CdpProfileDestination(ExportDestination):
    """Writes each user's recommendations onto a CDP profile; subclasses say how a member is encoded and framed."""

    # both APIs deduplicate by ids derived from the export's id (docs/reference/idempotency.md#per-destination)
    idempotent = True
    path: str

    def __init__(self, config: ExportDestinationConfig, context: Context, *,
                 transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(config, context)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._lanes = config.batch_policy().max_in_flight

    def basic_credentials(self) -> str:
        """`user:password` for HTTP Basic auth."""
        raise NotImplementedError

    def encode(self, row: ExportRow) -> bytes:
        """One member of the request body; RejectedError when it cannot be sent."""
        raise NotImplementedError

    def frame(self, members: list[bytes]) -> bytes:
        """The request body holding the encoded members."""
        raise NotImplementedError

    export_rows = frozenset({USER_RECOMMENDATIONS})

    def partition_key(self, row: ExportRow) -> str:
        return lane_of(row.user_id or row.message_id, self._lanes)

    async def start(self) -> None:
        if self._client is None:
            token = base64.b64encode(self.basic_credentials().encode()).decode()
            headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
            self._client = http_client(self.config.endpoint, headers, self.config.timeout_secs,  # type: ignore[attr-defined]
                                       self._lanes, self._transport)

    async def send(self, batch: Sequence[ExportRow]) -> None:
        await self.start()
        assert self._client is not None
        await post_members(self._client, self.path, batch, self.encode, self.frame)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
