"""mParticle: each user's recommendations as user attributes through the Events API's /v2/bulkevents."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import httpx
import orjson
from pydantic import Field, SecretStr

from connectors.destinations.http_delivery import (
    http_client,
    lane_of,
    post_members,
)
from connectors.formats.recommendations import is_user_recommendations, user_recommendations
from hub.connector import BatchPolicy, Context, Destination, DestinationConfig
from hub.errors import RejectedError
from hub.events import Event, EventKind

# /v2/bulkevents: at most 100 batches per request, each batch (one user) at most 128 KB
# (destinations.md §3b). No request rate is documented: 429 + Retry-After drives the adaptive rate.
MAX_BATCHES_PER_REQUEST = 100
MAX_BATCH_BYTES = 128 * 1024
# source_request_id / source_message_id dedupe inbound data (§3b): derived, so a resend repeats them.
_ID_NAMESPACE = uuid.UUID("8f0f4d1e-3c55-4b7a-9a3e-6d0c1f7f5a21")


class MparticleProfileConfig(DestinationConfig):
    """Writes recommendations onto mParticle profiles as user attributes, one batch per user.

    User attribute values are strings or lists of strings (destinations.md §3b), so the ids go in a
    string list and the items with their metadata, when asked for, in a JSON string. mParticle answers
    202 even when a batch later fails its own checks.
    """

    type: Literal["mparticle_profile"]
    example: ClassVar[dict[str, Any]] = {
        "type": "mparticle_profile", "api_key": "${MPARTICLE_API_KEY}", "api_secret": "${MPARTICLE_API_SECRET}"}
    api_limits: ClassVar[BatchPolicy] = BatchPolicy(
        max_events=MAX_BATCHES_PER_REQUEST, max_wait_secs=0.2, max_in_flight=8
    )
    default_kinds: ClassVar[frozenset[EventKind]] = frozenset({EventKind.USER})

    api_key: SecretStr = Field(..., description="Server-to-server input feed key, e.g. ${MPARTICLE_API_KEY}.")
    api_secret: SecretStr = Field(..., description="Its secret, e.g. ${MPARTICLE_API_SECRET}.")
    endpoint: str = Field(
        "https://s2s.mparticle.com",
        description="Pod host: https://s2s.us1.mparticle.com, s2s.us2, s2s.eu1, s2s.au1 (destinations.md §3b).",
    )
    environment: Literal["production", "development"] = Field("production", description="Batch environment.")
    item_ids_attribute: str = Field("recommended_item_ids", description="User attribute with the item ids.")
    items_attribute: str | None = Field(
        None, description="User attribute with the items and metadata as a JSON string; null: not sent.",
    )
    item_fields: list[str] | None = Field(
        None, description="Metadata columns in `items_attribute` (default: every column the job decorated with)."
    )
    event_name: str | None = Field(
        "Recommendations Updated", description="Custom event sent with the attributes; null: attributes only.",
    )
    timeout_secs: float = Field(15.0, gt=0, description="Per-request timeout.")


class MparticleProfile(Destination):
    """mParticle Events API destination for per-user recommendations."""

    Config = MparticleProfileConfig
    config: MparticleProfileConfig
    idempotent = True  # source_request_id and source_message_id are derived from the export's id

    def __init__(self, config: MparticleProfileConfig, context: Context, *,
                 transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(config, context)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._lanes = config.batch_policy().max_in_flight

    def accepts(self, event: Event) -> bool:
        return is_user_recommendations(event)

    def partition_key(self, event: Event) -> str:
        return lane_of(event.user_id or event.message_id, self._lanes)

    async def start(self) -> None:
        if self._client is None:
            credentials = f"{self.config.api_key.get_secret_value()}:{self.config.api_secret.get_secret_value()}"
            headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
                       "Content-Type": "application/json"}
            self._client = http_client(self.config.endpoint, headers, self.config.timeout_secs, self._lanes,
                                       self._transport)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def batch_of(self, event: Event) -> bytes:
        """The mParticle batch of one user, encoded; RejectedError past the 128 KB batch limit."""
        recs = user_recommendations(event)
        attributes: dict[str, Any] = {self.config.item_ids_attribute: recs.item_ids}
        if self.config.items_attribute:
            attributes[self.config.items_attribute] = orjson.dumps(
                recs.template_items(self.config.item_fields)).decode()
        identities = {"customer_id": recs.user_id}
        if recs.email:
            identities["email"] = recs.email
        batch: dict[str, Any] = {
            "environment": self.config.environment,
            "user_identities": identities,
            "user_attributes": attributes,
            "source_request_id": str(uuid.uuid5(_ID_NAMESPACE, event.message_id)),
        }
        if self.config.event_name:
            batch["events"] = [{"event_type": "custom_event", "data": {
                "event_name": self.config.event_name, "custom_event_type": "other",
                "source_message_id": str(uuid.uuid5(_ID_NAMESPACE, f"{event.message_id}:event")),
                "timestamp_unixtime_ms": int(event.timestamp * 1000),
                "custom_attributes": {"job": recs.job, "run_id": recs.run_id},
            }}]
        encoded = orjson.dumps(batch)
        if len(encoded) > MAX_BATCH_BYTES:
            raise RejectedError("batch_too_large",
                                f"{len(encoded)} bytes exceed mParticle's 128 KB per batch (destinations.md §3b)")
        return encoded

    async def send(self, batch: Sequence[Event]) -> None:
        await self.start()
        assert self._client is not None
        await post_members(self._client, "/v2/bulkevents", batch, self.batch_of,
                           lambda batches: b"[" + b",".join(batches) + b"]")
