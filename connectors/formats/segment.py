"""Decodes Segment Tracking API messages (track, identify, page, screen, group, alias) into Events."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import msgspec

from hub.errors import RejectedError
from hub.events import Event, EventKind, SourceRef, to_epoch_secs
from hub.ids import real_id

CALLS = ("track", "identify", "page", "screen", "group", "alias")

# Event names of Segment's E-commerce Spec v2 the default mapping reads (segment-docs spec/ecommerce/v2.md).
PRODUCT_EVENTS = ("Product Viewed", "Product Clicked", "Product Added", "Product Removed", "Product Added to Wishlist")
ORDER_EVENTS = ("Order Completed",)  # its products sit in `properties.products`
PRODUCT_LIST_VIEWED = "Product List Viewed"  # its products are what the user was shown
CATALOG_UPSERT_EVENTS = ("Product Updated", "Product Created")
CATALOG_REMOVAL_EVENTS = ("Product Deleted",)

Id = str | int  # SDKs send numeric user ids too; they are kept as their decimal string
_KINDS = {"identify": EventKind.IDENTIFY, "alias": EventKind.ALIAS}  # every other call is an interaction
_INTERACTION = EventKind.INTERACTION  # bound once: `EventKind.X` is a metaclass attribute lookup (~70 ns on 3.11)
_ID_FIELDS = ("userId", "anonymousId", "previousId")


class SegmentMessage(msgspec.Struct, kw_only=True):
    """The fields of a Segment message the hub reads (segment-docs spec/common.md); others are ignored."""

    type: str | None = None
    messageId: str | None = None
    userId: Id | None = None
    anonymousId: Id | None = None
    previousId: Id | None = None
    event: str | None = None
    name: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    timestamp: str | float | None = None
    originalTimestamp: str | float | None = None
    sentAt: str | float | None = None


class _LeanMessage(SegmentMessage, kw_only=True):
    """`SegmentMessage` with its objects taken as they are: converting them to `dict[str, Any]` re-checked
    every key and cost more than the rest of the message (JSON and Avro maps only have string keys). Their
    type is checked by `_read_lean`; anything else falls back to `SegmentMessage`, which names the field in error."""

    properties: Any = None
    traits: Any = None
    context: Any = None


def _read_lean(message: dict[str, Any]) -> SegmentMessage | None:
    """The message as `SegmentMessage` when its objects are plain dicts (copied one level deep, as converting
    them did: an Event's maps are its own) and nothing else fails; None otherwise."""
    try:
        msg = msgspec.convert(message, _LeanMessage, strict=False)
    except msgspec.ValidationError:
        return None
    properties, traits, context = msg.properties, msg.traits, msg.context
    if (type(properties) is not dict and properties is not None or type(traits) is not dict and traits is not None
            or type(context) is not dict and context is not None):
        return None
    msg.properties = None if properties is None else dict(properties)
    msg.traits = None if traits is None else dict(traits)
    msg.context = None if context is None else dict(context)
    return msg


def decode_message(
    message: Any,
    *,
    source_id: str,
    request_id: str | None = None,
    call: str | None = None,
    batch_context: dict[str, Any] | None = None,
    received_at: float | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> Event | None:
    """One Segment message → Event; None for calls Personalize has no use for (group).

    `call` forces the type (the single-call endpoints `/v1/track` etc. imply it); `partition` and `offset`
    locate a message read from Kafka. Raises RejectedError with a reason code and a message naming the field.
    """
    if not isinstance(message, dict):
        raise RejectedError("invalid_type", f"a message must be a JSON object, got {type(message).__name__}")
    get = message.get
    if type(get("userId")) is float or type(get("anonymousId")) is float or type(get("previousId")) is float:
        # JSON parsers read integers past 64 bits as floats: such an id has already lost digits.
        field = next(field for field in _ID_FIELDS if type(get(field)) is float)
        raise RejectedError("invalid_type", f"{field}: ids must be strings or integers, got a float")
    msg = _read_lean(message)
    if msg is None:  # something to coerce or to refuse: the full conversion, whose error names the field
        try:
            msg = msgspec.convert(message, SegmentMessage, strict=False)
        except msgspec.ValidationError as err:
            raise RejectedError("invalid_type", _field_error(err)) from None
    kind_of = call or msg.type
    if kind_of not in CALLS:
        raise RejectedError("unsupported_type", f"type: expected one of {', '.join(CALLS)}, got {kind_of!r}")
    if kind_of == "group":
        return None
    # Placeholders ("null", …) are missing ids, not ids: Personalize silently drops events with them
    # (docs/reference/personalize-api.md#placeholder-ids); real_id makes them None.
    user_id = None if msg.userId is None else real_id(msg.userId)
    anonymous_id = None if msg.anonymousId is None else real_id(msg.anonymousId)
    if user_id is None and anonymous_id is None:
        raise RejectedError("missing_identity", "userId or anonymousId: one of them is required")
    if kind_of == "track" and not msg.event:
        raise RejectedError("missing_field", "event: a track call needs an event name")
    previous_id = None if msg.previousId is None else real_id(msg.previousId)
    if kind_of == "alias" and (previous_id is None or user_id is None):
        raise RejectedError("missing_field", "previousId and userId: an alias call needs both")

    context = {**batch_context, **msg.context} if batch_context and msg.context else (msg.context or batch_context or {})
    properties = msg.properties or {}
    name = msg.event if kind_of == "track" else (msg.name or properties.get("name"))
    kind = _KINDS.get(kind_of, _INTERACTION)
    session_id = context.get("sessionId")
    return Event(
        kind=kind,
        source=SourceRef(
            source_id=source_id, message_id=msg.messageId or _content_id(message), request_id=request_id,
            call=call, partition=partition, offset=offset,
        ),
        timestamp=_timestamp(msg, received_at),
        name=name,
        call=kind_of,
        user_id=user_id,
        anonymous_id=anonymous_id,
        session_id=str(session_id) if session_id not in (None, "") else None,
        previous_id=previous_id,
        properties=properties,
        traits=msg.traits or context.get("traits") or {},
        context=context,
        raw=message,
    )


def _timestamp(msg: SegmentMessage, received_at: float | None) -> float:
    """Segment's rule (spec/common.md): timestamp = receivedAt − (sentAt − originalTimestamp)."""
    received = received_at if received_at is not None else time.time()
    try:
        if msg.timestamp is not None:
            return to_epoch_secs(msg.timestamp)
        if msg.originalTimestamp is not None:
            original = to_epoch_secs(msg.originalTimestamp)
            if msg.sentAt is None:
                return original
            return to_epoch_secs(received - (to_epoch_secs(msg.sentAt) - original))  # skew may push it out
    except ValueError as err:
        field = "timestamp" if msg.timestamp is not None else "originalTimestamp/sentAt"
        raise RejectedError("invalid_timestamp", f"{field}: {err}") from None
    return received


def _content_id(message: dict[str, Any]) -> str:
    """A message id derived from the content, so a redelivered message without one keeps the same id."""
    return "sha256:" + hashlib.sha256(msgspec.json.encode(message, order="sorted")).hexdigest()[:32]


def _field_error(err: msgspec.ValidationError) -> str:
    # msgspec says "Expected `str`, got `int` - at `$.userId`": lead with the field, as the HTTP API does.
    text = str(err)
    if " - at `$." in text:
        message, _, path = text.partition(" - at `$.")
        return f"{path.rstrip('`')}: {message}"
    return text


def encoded_size(message: Any) -> int:
    """Bytes of a message as compact JSON, for the per-event size limit inside a batch."""
    return len(msgspec.json.encode(message))
