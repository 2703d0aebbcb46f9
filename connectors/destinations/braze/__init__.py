"""Braze: recommendations as profile custom attributes (/users/track) or API-triggered campaign/Canvas sends."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import httpx
import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.destinations.braze.attributes import (
    MAX_STRING_CHARS,
    PROPERTIES_MAX_BYTES,
    EncodedItems,
    check_values,
    shape_item,
    within_limits,
)
from connectors.destinations.http_delivery import (
    MemberFailures,
    Poster,
    lane_of,
    raise_for_response,
    transport_failure,
)
from connectors.formats.recommendations import USER_RECOMMENDATIONS, UserRecommendations, user_recommendations
from hub.connector import BatchPolicy, Context, ExportDestination, ExportDestinationConfig
from hub.errors import RejectedError
from hub.rows import ExportRow
from hub.secret import Secret

log = logging.getLogger(__name__)

# POST /users/track: "up to 75 total objects combined across attributes, events and purchases per
# request"; 3,000 requests per 3 s per workspace (docs/reference/braze.md#userstrack). One attributes object per user.
TRACK_LIMITS = BatchPolicy(max_events=75, max_wait_secs=0.2, max_requests_per_sec=1000.0, max_in_flight=16)
# /campaigns/trigger/send and /canvas/trigger/send: 50 recipients per request; 250,000 requests per
# hour shared by the messaging endpoints that target users (docs/reference/braze.md#campaign-and-canvas-trigger-send).
TRIGGER_LIMITS = BatchPolicy(max_events=50, max_wait_secs=0.2, max_requests_per_sec=250_000 / 3600, max_in_flight=8)
# Envelope fields of a /users/track attributes object, written before the user's own attributes.
_TRACK_KEYS = frozenset({"external_id", "_update_existing_only"})


class BrazeUsersConfig(ExportDestinationConfig):
    """Pushes each user's recommendations to Braze, for templates to render.

    `mode: track` writes them as custom attributes with /users/track (an overwrite: resending is safe).
    `mode: campaign|canvas` triggers an API-triggered campaign or Canvas per user with the items as
    trigger/entry properties; Braze has no idempotency key for sends, so set the campaign's
    re-eligibility to at least its period (docs/reference/braze.md#idempotency-and-re-eligibility).
    """

    type: Literal["braze"]
    example: ClassVar[dict[str, Any]] = {
        "type": "braze", "id": "braze", "rest_url": "${BRAZE_REST_URL}", "api_key": "${BRAZE_API_KEY}"}
    api_limits: ClassVar[BatchPolicy] = TRACK_LIMITS
    trigger_limits: ClassVar[BatchPolicy] = TRIGGER_LIMITS

    rest_url: str = Field(
        ...,
        description="REST endpoint of your instance, matching the dashboard: https://rest.iad-0N.braze.com "
        "(US) or https://rest.fra-0N.braze.eu (EU).",
    )
    api_key: Secret = Field(
        default_factory=lambda: SecretStr(os.environ.get("BRAZE_API_KEY", "")),
        validate_default=True,
        description="REST API key with users.track / campaigns.trigger.send / canvas.trigger.send; "
        "default: $BRAZE_API_KEY.",
    )
    mode: Literal["track", "campaign", "canvas"] = Field(
        "track", description="track: custom attributes; campaign / canvas: an API-triggered send per user."
    )
    campaign_id: str | None = Field(None, description="API-triggered campaign (mode campaign).")
    canvas_id: str | None = Field(None, description="API-triggered Canvas (mode canvas).")
    items_attribute: str = Field(
        "recommended_items", description="Array-of-objects attribute / property holding the items with metadata."
    )
    item_ids_attribute: str | None = Field(
        "recommended_item_ids", description="Flat array of item ids for segmentation; null to leave it out."
    )
    item_fields: list[str] | None = Field(
        None, description="Metadata columns copied onto each item (default: every column the job decorated with)."
    )
    include_score: bool = Field(False, description="Copy each item's score too.")
    update_existing_only: bool = Field(
        True, description="track: only update existing profiles (Braze's default); false also creates them."
    )
    send_to_existing_only: bool = Field(True, description="campaign/canvas: never create a profile for a send.")
    attributes_with_send: bool = Field(
        False, description="campaign/canvas: also write the attributes, which Braze does before the send (docs/reference/braze.md#campaign-and-canvas-trigger-send)."
    )
    canvas_properties_key: Literal["canvas_entry_properties", "context"] = Field(
        "canvas_entry_properties", description="Canvas property object name: the classic one or the newer `context`."
    )
    timeout_secs: float = Field(15.0, gt=0, description="Per-request timeout.")

    @field_validator("items_attribute", "item_ids_attribute")
    @classmethod
    def _attribute_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or " " in value or len(value) > MAX_STRING_CHARS):
            raise ValueError("attribute names are 1..255 characters without spaces (docs/reference/braze.md#userstrack)")
        return value

    @model_validator(mode="after")
    def _mode_needs_its_id(self) -> BrazeUsersConfig:
        if self.mode == "campaign" and not self.campaign_id:
            raise ValueError("mode campaign needs campaign_id")
        if self.mode == "canvas" and not self.canvas_id:
            raise ValueError("mode canvas needs canvas_id")
        if self.mode != "track":
            for name in ("max_events", "max_requests_per_sec", "max_in_flight"):
                value, limit = getattr(self.batch, name), getattr(TRIGGER_LIMITS, name)
                if value is not None and value > limit:
                    raise ValueError(f"batch.{name}={value} exceeds the trigger/send limit {limit}")
        return self

    def batch_policy(self) -> BatchPolicy:
        return (TRACK_LIMITS if self.mode == "track" else TRIGGER_LIMITS).lowered_by(self.batch)


class BrazeUsers(ExportDestination):
    """Braze REST API destination for per-user recommendations."""

    Config = BrazeUsersConfig
    config: BrazeUsersConfig
    def __init__(self, config: BrazeUsersConfig, context: Context, *,
                 transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(config, context)
        # Per instance: attribute overwrites are safe to resend, sends are not
        # (docs/reference/idempotency.md#per-destination).
        self.idempotent = config.mode == "track"
        self._transport = transport
        self._poster: Poster | None = None
        self._lanes = config.batch_policy().max_in_flight
        self._path = {"track": "/users/track", "campaign": "/campaigns/trigger/send",
                      "canvas": "/canvas/trigger/send"}[config.mode]
        self._track_flag = b',"_update_existing_only":' + orjson.dumps(config.update_existing_only) + b","
        self._items = EncodedItems(config.item_fields, config.include_score)
        # '{"<items attribute>":' and ',"<item ids attribute>":' of a track object's values, encoded once.
        self._items_head = b"{" + orjson.dumps(config.items_attribute) + b":"
        self._ids_head = b"," + orjson.dumps(config.item_ids_attribute) + b":" if config.item_ids_attribute else None
        # A track object spliced whole: what follows the user's id up to their first item, and what follows the
        # last item up to the item ids (or the object's end); the item ids' encoding goes between those.
        self._track_head = self._track_flag + self._items_head[1:] + b"["
        self._track_ids = b"]" + self._ids_head if self._ids_head is not None else None
        self._splice_track = config.mode == "track" and not config.include_score

    export_rows = frozenset({USER_RECOMMENDATIONS})
    reads_views = True

    def partition_key(self, row: ExportRow) -> str:
        return lane_of(row.user_id or row.message_id, self._lanes)

    async def start(self) -> None:
        if self._poster is None:
            headers = {"Authorization": f"Bearer {self.config.api_key.get_secret_value()}",
                       "Content-Type": "application/json"}
            self._poster = Poster(self.config.rest_url.rstrip("/") + self._path, headers, self.config.timeout_secs,
                                  self._lanes, self._transport)

    async def close(self) -> None:
        if self._poster is not None:
            await self._poster.aclose()
            self._poster = None

    async def send(self, batch: Sequence[ExportRow]) -> None:
        await self.start()
        failures = MemberFailures(len(batch))
        objects, positions = [], []
        for index, row in enumerate(batch):
            try:
                objects.append(self._object_for(user_recommendations(row)))
                positions.append(index)
            except RejectedError as err:
                failures.reject(index, err)
        if objects:
            try:
                await self._post(objects)
            except Exception as err:  # noqa: BLE001 - folded onto batch positions, re-raised there
                failures.absorb(err, positions)
        failures.raise_if_any()

    def _object_for(self, recs: UserRecommendations) -> bytes:
        """The attributes object (track) or recipient object (sends) of one user, JSON-encoded.

        Encoded once per user, its items spliced in already encoded (attributes.py); the size check
        reads the same bytes the request body is joined from.
        """
        items_key = self.config.items_attribute
        encoded_items = None
        if recs.catalog_items is not None:
            if self._splice_track and not recs.attributes:  # the common case: every item encoded already
                joined = self._items.joined(recs.catalog_items)
                if joined is not None:
                    return self._track_object(recs, joined)
            encoded_items = self._items.encode_catalog(recs.catalog_items, recs.scores)
            if encoded_items is not None and not recs.attributes and self.config.mode == "track":
                return self._track_object(recs, encoded_items[1:-1])
        if encoded_items is None:
            encoded_items = self._items.encode(recs.items)
        checked: str | Literal[False] = items_key
        if encoded_items is not None:
            items: Any = orjson.Fragment(encoded_items)
        else:  # shaped afresh; the full check below names what is wrong, if anything
            items, items_fine = self._template_items(recs.items)
            checked = items_fine and items_key
        values: dict[str, Any] = {**recs.attributes, items_key: items}
        if self.config.item_ids_attribute:
            values[self.config.item_ids_attribute] = recs.item_ids
        encoded = orjson.dumps(values)
        check_values(values, len(encoded), checked)
        if self.config.mode == "track":
            if _TRACK_KEYS.isdisjoint(values):  # the common case: splice the two envelope fields in front
                return b"".join((b'{"external_id":', orjson.dumps(recs.user_id), self._track_flag, encoded[1:]))
            return orjson.dumps({"external_id": recs.user_id, "_update_existing_only": self.config.update_existing_only,
                                 **values})
        properties_key = "trigger_properties" if self.config.mode == "campaign" else self.config.canvas_properties_key
        recipient: dict[str, Any] = {"external_user_id": recs.user_id, properties_key: values,
                                     "send_to_existing_only": self.config.send_to_existing_only}
        if self.config.attributes_with_send:
            recipient["attributes"] = values
        return orjson.dumps(recipient)

    def _track_object(self, recs: UserRecommendations, items: bytes) -> bytes:
        """The common case spliced from bytes: a user without own attributes, every item from the catalog
        (`items`: their encodings joined by commas).

        Item ids and metadata were checked against Braze's limits when their entries were first encoded
        and the attribute names by the config, so only the total size is left to check.
        """
        user_id = orjson.dumps(recs.user_id)
        if self._track_ids is not None:
            parts: tuple[bytes, ...] = (b'{"external_id":', user_id, self._track_head, items, self._track_ids,
                                        orjson.dumps(recs.item_ids), b"}")
        else:
            parts = (b'{"external_id":', user_id, self._track_head, items, b"]}")
        encoded = b"".join(parts)
        # The values object alone, as check_values measures it: the object less its envelope.
        size = len(encoded) - len(b'{"external_id":') - len(user_id) - len(self._track_flag) + 1
        if size > PROPERTIES_MAX_BYTES:
            check_values({}, size)  # raises, naming the limit
        return encoded

    def _template_items(self, items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        """`UserRecommendations.template_items` checked as they are built: (items, within Braze's limits)."""
        shaped, fine = [], True
        for item in items:
            out, item_fine = shape_item(item, self.config.item_fields, self._items.known_keys)
            fine = fine and item_fine
            if self.config.include_score and item.get("score") is not None:
                out["score"] = item["score"]
                fine = fine and within_limits(item["score"])
            shaped.append(out)
        return shaped, fine

    def _body(self, objects: list[bytes]) -> bytes:
        """The request body around the already-encoded objects."""
        if self.config.mode == "track":
            head = b'{"attributes":['
        elif self.config.mode == "campaign":
            head = b'{"campaign_id":' + orjson.dumps(self.config.campaign_id) + b',"recipients":['
        else:
            head = b'{"canvas_id":' + orjson.dumps(self.config.canvas_id) + b',"recipients":['
        return b"".join((head, b",".join(objects), b"]}"))

    async def _post(self, objects: list[bytes]) -> None:
        assert self._poster is not None
        try:
            response = await self._poster.post(self._body(objects))
        except httpx.TransportError as err:
            raise transport_failure(err, resend_safe=self.idempotent) from err
        raise_for_response(response, len(objects), resend_safe=self.idempotent)
        self._raise_item_errors(response, len(objects))

    def _raise_item_errors(self, response: httpx.Response, count: int) -> None:
        """A 2xx may carry non-fatal `errors`; the other objects were processed (docs/reference/braze.md#responses-and-rate-limits)."""
        try:
            body = response.json()
        except ValueError:
            return  # 2xx without a JSON body: nothing says anything failed
        errors = body.get("errors") if isinstance(body, dict) else None
        if not errors:
            return
        failures = MemberFailures(count)
        for error in errors:
            index = error.get("index") if isinstance(error, dict) else None
            if isinstance(index, int) and 0 <= index < count:
                failures.reject(index, RejectedError("braze_invalid_object", str(error.get("type") or error)))
            else:  # not attributable to a member: keep it visible rather than guess which one
                log.warning("braze %s: error not tied to an object: %s", self.config.id, error)
        failures.raise_if_any()
