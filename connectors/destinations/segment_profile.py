"""Segment: each user's recommendations as `identify` traits through the HTTP Tracking API's /v1/batch."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field

from connectors.destinations.cdp_profile import CdpProfileDestination
from connectors.formats.recommendations import user_recommendations
from hub.connector import BatchPolicy, ExportDestinationConfig
from hub.errors import RejectedError
from hub.rows import ExportRow
from hub.secret import Secret

# /v1/batch: 32 KB per message, 500 KB per request, at most 2,500 messages; ≤ 1,000 requests/s per
# workspace recommended (docs/reference/segment.md#writing-profiles-back). KB read as 1,000 bytes, the stricter reading.
MAX_MESSAGE_BYTES = 32_000
MAX_BATCH_BYTES = 500_000
ENVELOPE_BYTES = 100  # {"batch":[…],"sentAt":"…"} around the messages
# messageId "must be unique and < 100 chars" (docs/reference/segment.md#writing-profiles-back)
MAX_MESSAGE_ID_CHARS = 100


class SegmentProfileConfig(ExportDestinationConfig):
    """Writes recommendations onto Segment profiles as identify traits (downstream tools read them).

    Segment answers 200 even for messages it later drops (e.g. validation in the Debugger), so a 200
    means "accepted" (docs/reference/segment.md#writing-profiles-back). `messageId` is derived from the export's id,
    which makes a resend a duplicate Segment discards.
    """

    type: Literal["segment_profile"]
    example: ClassVar[dict[str, Any]] = {"type": "segment_profile", "write_key": "${SEGMENT_WRITE_KEY}"}
    api_limits: ClassVar[BatchPolicy] = BatchPolicy(
        max_events=2500, max_bytes=MAX_BATCH_BYTES - ENVELOPE_BYTES, max_wait_secs=0.2,
        max_requests_per_sec=1000.0, max_in_flight=8,
    )

    write_key: Secret = Field(..., description="Source write key (sent as Basic auth), e.g. ${SEGMENT_WRITE_KEY}.")
    endpoint: str = Field(
        "https://api.segment.io",
        description="Tracking API host; EU workspaces must use https://events.eu1.segmentapis.com (docs/reference/segment.md#writing-profiles-back).",
    )
    items_trait: str = Field("recommended_items", description="Trait holding the items with their metadata.")
    item_ids_trait: str | None = Field("recommended_item_ids", description="Trait holding the ids; null: none.")
    item_fields: list[str] | None = Field(
        None, description="Metadata columns copied onto each item (default: every column the job decorated with)."
    )
    timeout_secs: float = Field(15.0, gt=0, description="Per-request timeout.")


class SegmentProfile(CdpProfileDestination):
    """Segment HTTP Tracking API destination for per-user recommendations."""

    Config = SegmentProfileConfig
    config: SegmentProfileConfig

    path = "/v1/batch"

    def basic_credentials(self) -> str:
        # the write key, an empty password (docs/reference/segment.md#writing-profiles-back)
        return f"{self.config.write_key.get_secret_value()}:"

    def size_of(self, row: ExportRow) -> int:
        try:
            return len(self.message(row)) + 1  # the comma between messages
        except RejectedError:
            return 0  # rejected at send, sends nothing

    def encode(self, row: ExportRow) -> bytes:
        return self.message(row)

    def frame(self, members: list[bytes]) -> bytes:
        sent_at = datetime.now(timezone.utc).isoformat().encode()
        return b'{"batch":[' + b",".join(members) + b'],"sentAt":"' + sent_at + b'"}'

    def message(self, row: ExportRow) -> bytes:
        """One identify message, encoded; RejectedError when it breaks Segment's per-message limit."""
        recs = user_recommendations(row)
        traits: dict[str, Any] = {**recs.attributes,
                                  self.config.items_trait: recs.template_items(self.config.item_fields)}
        if self.config.item_ids_trait:
            traits[self.config.item_ids_trait] = recs.item_ids
        message = {
            "type": "identify",
            "userId": recs.user_id,
            "traits": traits,
            "messageId": message_id_for(row.message_id),
            "timestamp": datetime.fromtimestamp(row.timestamp, timezone.utc).isoformat(),
        }
        encoded = orjson.dumps(message)
        if len(encoded) > MAX_MESSAGE_BYTES:
            raise RejectedError("message_too_large",
                                f"{len(encoded)} bytes exceed Segment's 32 KB per message (docs/reference/segment.md#writing-profiles-back)")
        return encoded


def message_id_for(export_id: str) -> str:
    """Segment's dedup key: the export's id when short enough, else its digest (never a truncation)."""
    if len(export_id) < MAX_MESSAGE_ID_CHARS:
        return export_id
    return hashlib.sha256(export_id.encode()).hexdigest()
