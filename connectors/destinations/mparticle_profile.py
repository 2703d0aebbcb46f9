"""mParticle: each user's recommendations as user attributes through the Events API's /v2/bulkevents."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field

from connectors.destinations.cdp_profile import CdpProfileDestination
from connectors.formats.recommendations import user_recommendations
from hub.connector import BatchPolicy, ExportDestinationConfig
from hub.errors import RejectedError
from hub.rows import ExportRow
from hub.secret import Secret

# /v2/bulkevents: at most 100 batches per request, each batch (one user) at most 128 KB
# (docs/reference/mparticle.md#events-api). No request rate is documented: 429 + Retry-After drives the adaptive rate.
MAX_BATCHES_PER_REQUEST = 100
MAX_BATCH_BYTES = 128 * 1024
# source_request_id / source_message_id dedupe inbound data (docs/reference/mparticle.md#events-api): derived, so a
# resend repeats them.
_ID_NAMESPACE = uuid.UUID("8f0f4d1e-3c55-4b7a-9a3e-6d0c1f7f5a21")


class MparticleProfileConfig(ExportDestinationConfig):
    """Writes recommendations onto mParticle profiles as user attributes, one batch per user.

    User attribute values are strings or lists of strings (docs/reference/mparticle.md#events-api), so the ids go in a
    string list and the items with their metadata, when asked for, in a JSON string. mParticle answers
    202 even when a batch later fails its own checks.
    """

    type: Literal["mparticle_profile"]
    example: ClassVar[dict[str, Any]] = {
        "type": "mparticle_profile", "api_key": "${MPARTICLE_API_KEY}", "api_secret": "${MPARTICLE_API_SECRET}"}
    api_limits: ClassVar[BatchPolicy] = BatchPolicy(
        max_events=MAX_BATCHES_PER_REQUEST, max_wait_secs=0.2, max_in_flight=8
    )

    api_key: Secret = Field(..., description="Server-to-server input feed key, e.g. ${MPARTICLE_API_KEY}.")
    api_secret: Secret = Field(..., description="Its secret, e.g. ${MPARTICLE_API_SECRET}.")
    endpoint: str = Field(
        "https://s2s.mparticle.com",
        description="Pod host: https://s2s.us1.mparticle.com, s2s.us2, s2s.eu1, s2s.au1 (docs/reference/mparticle.md#events-api).",
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


class MparticleProfile(CdpProfileDestination):
    """mParticle Events API destination for per-user recommendations."""

    Config = MparticleProfileConfig
    config: MparticleProfileConfig

    path = "/v2/bulkevents"

    def basic_credentials(self) -> str:
        return f"{self.config.api_key.get_secret_value()}:{self.config.api_secret.get_secret_value()}"

    def encode(self, row: ExportRow) -> bytes:
        return self.batch_of(row)

    def frame(self, members: list[bytes]) -> bytes:
        return b"[" + b",".join(members) + b"]"

    def batch_of(self, row: ExportRow) -> bytes:
        """The mParticle batch of one user, encoded; RejectedError past the 128 KB batch limit."""
        recs = user_recommendations(row)
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
            "source_request_id": str(uuid.uuid5(_ID_NAMESPACE, row.message_id)),
        }
        if self.config.event_name:
            batch["events"] = [{"event_type": "custom_event", "data": {
                "event_name": self.config.event_name, "custom_event_type": "other",
                "source_message_id": str(uuid.uuid5(_ID_NAMESPACE, f"{row.message_id}:event")),
                "timestamp_unixtime_ms": int(row.timestamp * 1000),
                "custom_attributes": {"job": recs.job, "run_id": recs.run_id},
            }}]
        encoded = orjson.dumps(batch)
        if len(encoded) > MAX_BATCH_BYTES:
            raise RejectedError("batch_too_large",
                                f"{len(encoded)} bytes exceed mParticle's 128 KB per batch (docs/reference/mparticle.md#events-api)")
        return encoded

