"""The record rules: every mapped record checked against Personalize's limits and its dataset schema.

Applied by the encoder right after mapping, so nothing reaches a Personalize destination that the service would refuse or,
worse, accept with a 200 and silently drop (a "null" sessionId, docs/reference/personalize-api.md#placeholder-ids). It
also finishes each record for the wire: `properties` leaves here as the JSON string the API takes
(docs/reference/personalize-api.md#putevents, docs/reference/personalize-api.md#properties-json-string), lists joined
with `|`, values as the strings the docs show (`{"numberOfRatings": "12"}`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from connectors.destinations.personalize.schema import (
    INTERACTIONS,
    ITEMS,
    MAX_PROPERTIES_CHARS,
    RESERVED_EVENT_PROPERTY_KEYS,
    USERS,
    DatasetSchema,
    check_id,
    check_impression,
    fold_key,
    join_values,
)
from connectors.destinations.personalize.unit import PersonalizeRecord
from hub.errors import RejectedError
from hub.events import EventKind, Rejection
from hub.ids import is_placeholder_id

# PutEvents Event members (docs/reference/personalize-api.md#putevents): eventType 1..256, recommendationId 1..40; the
# id and impression rules are in schema.py, shared with the mapping that builds them.
MAX_EVENT_TYPE_CHARS = 256
MAX_RECOMMENDATION_ID_CHARS = 40
# metricAttribution.eventAttributionSource: ≤1024 printable ASCII with a non-space
# (docs/reference/personalize-api.md#putevents).
MAX_ATTRIBUTION_SOURCE_CHARS = 1024
_ATTRIBUTION_SOURCE = re.compile(r"[\x20-\x7E]*[\x21-\x7E]+[\x20-\x7E]*")
# Quota: one event ≤10 KB (docs/reference/personalize-api.md#quotas). Records whose members cannot add up to that skip
# the exact measurement.
MAX_EVENT_BYTES = 10 * 1024

# Without properties, impression or attribution, an event's members are ids and numbers within their own
# limits: ≤ 6 x (256 + 256 + 256 + 40) characters + 64 per member, far below MAX_EVENT_BYTES.
_SMALL_MEMBERS = 7
# Session ids, user ids and event types that passed, remembered so each is checked once; cleared when full.
_MAX_CHECKED = 100_000

_DATASET_OF = {EventKind.INTERACTION: INTERACTIONS, EventKind.ITEM: ITEMS, EventKind.USER: USERS}
_INTERACTION = EventKind.INTERACTION  # bound once: `EventKind.X` is a metaclass attribute lookup (~70 ns on 3.11)


class RecordRules:
    """Checks and finishes mapped records in place; a record that fails becomes a Rejection with a reason code."""

    def __init__(self, schemas: Mapping[str, DatasetSchema | None] | None = None):
        schemas = schemas or {}
        self.schemas = {kind: schemas.get(kind) for kind in (INTERACTIONS, ITEMS, USERS)}
        self._required_members = _required_members(self.schemas[INTERACTIONS])
        # What passed once passes again: sessions and users send many events, a stream has few event types.
        # Each is checked once (a bounded memory, forgotten when full), not once per record.
        self._checked: set[str] = set()

    def check(self, unit: PersonalizeRecord) -> list[PersonalizeRecord] | Rejection:
        """One mapped record: `[unit]` with its record finished for the wire, or a Rejection naming the field."""
        rejection = self.rejection(unit)
        return [unit] if rejection is None else rejection

    def rejection(self, unit: PersonalizeRecord) -> Rejection | None:
        """`check` for the encoder's loop: None when the record passed and is finished, no list per record."""
        try:
            if unit.kind is _INTERACTION:
                event, record, checked = unit.event, unit.record, self._checked
                if event.session_id not in checked:
                    self._remember(check_id(event.session_id, "sessionId", "session_id"))
                if event.user_id is not None and event.user_id not in checked:
                    self._remember(check_id(event.user_id, "userId", "user_id"))
                if record["eventType"] not in checked:
                    _check_event_type(record["eventType"])
                    self._remember(record["eventType"])
                # eventId is event_id_for's: 1..256 characters by construction; a placeholder is still refused
                event_id = record["eventId"]
                if len(event_id) <= 16 and is_placeholder_id(event_id):
                    check_id(event_id, "eventId", "event_id")
                self.finish_interaction(record, mapped=True)
            else:
                self.finish_record(_DATASET_OF[unit.kind], unit.record)
        except RejectedError as err:
            return Rejection(source=unit.source, reason=err.reason, message=err.message, raw=unit.event.raw)
        return None

    def _remember(self, checked: str) -> None:
        if len(self._checked) >= _MAX_CHECKED:
            self._checked.clear()
        self._checked.add(checked)

    def finish_interaction(self, record: dict[str, Any], *, mapped: bool = False) -> dict[str, Any]:
        """The checks an interaction needs wherever it goes (PutEvents or a bulk import CSV): the record
        finished in place and returned, or RejectedError naming the field. Session and event ids are
        PutEvents' own: checked in `check`. `mapped`: built by the Mapper, whose itemId (schema.id_text),
        eventValue (a finite float) and impression (schema.impression_ids) already meet these rules, and
        whose eventType `check` has checked."""
        if not mapped:
            check_id(record.get("itemId"), "itemId", "item_id")
            _check_event_type(record.get("eventType"))
            if "eventValue" in record:
                value = record["eventValue"]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise RejectedError("invalid_event_value",
                                        f"eventValue: expected a finite number, got {value!r:.80}")
                record["eventValue"] = float(value)
            if "impression" in record:
                check_impression(record["impression"])
        sent_at = record.get("sentAt")
        if isinstance(sent_at, bool) or not isinstance(sent_at, (int, float)) or not 0 <= sent_at < math.inf:
            raise RejectedError("invalid_timestamp", f"sentAt: expected epoch seconds, got {sent_at!r:.80}")
        finished = record
        schema = self.schemas[INTERACTIONS]
        if "recommendationId" in record:
            recommendation_id = record["recommendationId"]
            check_id(recommendation_id, "recommendationId", "recommendation_id")
            if len(recommendation_id) > MAX_RECOMMENDATION_ID_CHARS:
                raise RejectedError("invalid_recommendation_id",
                                    f"recommendationId: longer than {MAX_RECOMMENDATION_ID_CHARS} characters")
        if "metricAttribution" in record:
            _check_attribution(record["metricAttribution"])
        for member, name in self._required_members:
            if member not in record:
                raise RejectedError("schema_violation", f"{member}: required by the schema's non-null {name}")
        properties = record.get("properties")
        if properties is not None:
            text = encode_properties(properties, schema, INTERACTIONS)
            if text == "{}":
                del finished["properties"]
            else:
                finished["properties"] = text
        elif schema is not None and schema.required_keys:
            missing = ", ".join(schema.required_keys)
            raise RejectedError("schema_violation", f"properties: missing required field(s) {missing}")
        if (len(finished) > _SMALL_MEMBERS or "properties" in finished or "impression" in finished
                or "metricAttribution" in finished) and _upper_bound_bytes(finished) > MAX_EVENT_BYTES:
            size = len(orjson.dumps(finished))
            if size > MAX_EVENT_BYTES:
                raise RejectedError("event_too_large", f"event: {size} bytes; the limit is {MAX_EVENT_BYTES}")
        return finished

    def finish_record(self, dataset_type: str, record: dict[str, Any]) -> dict[str, Any]:
        """An item or user record checked and finished in place (only its id and `properties` as the JSON
        string), or RejectedError."""
        id_key = "itemId" if dataset_type == ITEMS else "userId"
        check_id(record.get(id_key), id_key, "item_id" if dataset_type == ITEMS else "user_id")
        properties = record.get("properties")
        text = encode_properties({} if properties is None else properties, self.schemas[dataset_type], dataset_type)
        if len(record) != 2:
            for key in [key for key in record if key != id_key]:
                del record[key]
        record["properties"] = text
        return record


def encode_properties(properties: Any, schema: DatasetSchema | None, dataset_type: str) -> str:
    """A properties mapping (or an already encoded JSON string) checked and encoded for the wire."""
    if isinstance(properties, str):
        try:
            properties = orjson.loads(properties)
        except orjson.JSONDecodeError:
            raise RejectedError("invalid_property", "properties: not valid JSON") from None
    if not isinstance(properties, dict):
        raise RejectedError("invalid_property", "properties: expected a JSON object")
    values: dict[str, str] = {}
    for key, value in properties.items():
        if dataset_type == INTERACTIONS and fold_key(key) in RESERVED_EVENT_PROPERTY_KEYS:
            raise RejectedError("reserved_property", f"properties.{key}: reserved by PutEvents, not a property")
        if value is None:
            continue
        if schema is None:
            values[key] = join_values(value, f"properties.{key}")
            continue
        field = schema.by_key.get(key)
        if field is None:
            field = schema.by_folded.get(fold_key(key))  # e.g. number_of_ratings: sent as numberOfRatings
            if field is None:
                raise RejectedError("schema_violation",
                                    f"properties.{key}: not a field of the {dataset_type.title()} schema")
            if field.key in properties:
                raise RejectedError("schema_violation", f"properties.{key}: {field.name} is given twice")
        values[field.key] = field.convert(value)
    if schema is not None:
        for key in schema.required_keys:
            if key not in values:
                name = schema.by_key[key].name
                raise RejectedError("schema_violation", f"properties.{key} ({name}): required by the schema")
    text = orjson.dumps(values).decode()
    limit = MAX_PROPERTIES_CHARS[dataset_type]
    if len(text) > limit:
        raise RejectedError("properties_too_long", f"properties: {len(text)} characters; the limit is {limit}")
    return text


def _check_event_type(event_type: Any) -> None:
    if not isinstance(event_type, str) or is_placeholder_id(event_type):
        raise RejectedError("missing_event_type", f"eventType: required, got {event_type!r:.80}")
    if len(event_type) > MAX_EVENT_TYPE_CHARS:
        raise RejectedError("invalid_event_type", f"eventType: longer than {MAX_EVENT_TYPE_CHARS} characters")


def _check_attribution(attribution: Any) -> None:
    source = attribution.get("eventAttributionSource") if isinstance(attribution, dict) else None
    if (not isinstance(source, str) or len(source) > MAX_ATTRIBUTION_SOURCE_CHARS
            or not _ATTRIBUTION_SOURCE.fullmatch(source)):
        raise RejectedError("invalid_attribution_source",
                            "metricAttribution.eventAttributionSource: 1..1024 printable ASCII characters")


def _required_members(schema: DatasetSchema | None) -> tuple[tuple[str, str], ...]:
    """Top-level members the Interactions schema makes mandatory (its non-null reserved fields)."""
    if schema is None:
        return ()
    members = (("EVENT_VALUE", "eventValue"), ("IMPRESSION", "impression"), ("RECOMMENDATION_ID", "recommendationId"))
    return tuple((member, name) for name, member in members
                 if (field := schema.field(name)) is not None and not field.nullable)


def _upper_bound_bytes(record: dict[str, Any]) -> int:
    """An upper bound of the encoded size without encoding: a character costs at most 6 bytes in JSON
    (a `\\u00XX` escape); numbers, keys and punctuation stay under 64 bytes per member."""
    chars = 0
    for value in record.values():
        if type(value) is str:
            chars += len(value)
        elif type(value) is list:
            chars += sum(map(len, value)) + 3 * len(value)
        elif type(value) is dict:
            chars += len(value.get("eventAttributionSource", ""))
    return 6 * chars + 64 * (len(record) + 1)
