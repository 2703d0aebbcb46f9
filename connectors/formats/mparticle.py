"""Decodes mParticle Events API batches (custom, screen and commerce events, user identities) into Events."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import msgspec

from hub.errors import RejectedError
from hub.events import Event, EventKind, Rejection, SourceRef, to_epoch_secs
from hub.ids import real_id

# Event types that carry no interaction and no identity for Personalize: accepted and skipped, like
# Segment's `group` (event types from mParticle's inbound Events API JSON schema,
# docs/reference/mparticle.md#event-types).
SKIPPED_TYPES = frozenset({
    "session_start", "session_end", "crash_report", "opt_out", "first_run", "pre_attribution",
    "push_registration", "application_state_transition", "push_message", "network_performance",
    "breadcrumb", "profile", "user_attribute_change", "user_identity_change", "uninstall", "media",
})
DECODED_TYPES = ("custom_event", "screen_view", "commerce_event")

# mParticle ids are signed 64-bit integers (json-reference: "mpid (Int64)"); beyond 2**53 a float has
# already lost digits, so a float mpid is refused rather than rounded into someone else's id.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# Product fields renamed to Segment's E-commerce spec v2 names, so one mapping serves both dialects.
# mParticle's product `id` is the SKU (the SDKs' createProduct(name, sku, ...)): it fills both keys.
_PRODUCT_FIELDS = {
    "name": "name", "brand": "brand", "category": "category", "variant": "variant",
    "position": "position", "price": "price", "quantity": "quantity", "coupon_code": "coupon",
}
_ACTION_FIELDS = {
    "transaction_id": "order_id", "total_amount": "revenue", "tax_amount": "tax",
    "shipping_amount": "shipping", "coupon_code": "coupon", "affiliation": "affiliation",
    "product_action_list": "list_id", "checkout_step": "step", "checkout_options": "option",
}
# Commerce events are named after their product action (mParticle Events API, ProductAction.action); a
# product impression is named IMPRESSION_EVENT. The default mapping reads these names.
PRODUCT_ACTIONS = ("view_detail", "click", "add_to_cart", "remove_from_cart", "add_to_wishlist", "purchase")
IMPRESSION_EVENT = "impression"
# The batch members that describe the user rather than one event; dropped from per-event raw payloads
# so a re-decoded event (webhook → Kafka → hub) does not emit the batch's identify again.
_USER_MEMBERS = ("events", "user_attributes", "deleted_user_attributes")


def decode_batch(
    batch: Any,
    *,
    source_id: str,
    request_id: str | None = None,
    received_at: float | None = None,
    user_id_identity: str = "customer_id",
) -> tuple[list[Event], list[tuple[int | None, Rejection]]]:
    """One mParticle batch → its events and its rejections (event index, or None for the whole batch).

    `user_id_identity` names the `user_identities` entry that is the Personalize user id (`mpid` uses the
    mpid itself); otherwise the mpid is the anonymous id. Each event's `raw` is a one-event batch, so it
    can be written to Kafka and decoded again on its own.
    """
    received = received_at if received_at is not None else time.time()
    try:
        header, events_in, mpid, user_id, anonymous_id = _read_batch(batch, user_id_identity)
        batch_time = _millis(header.get("timestamp_unixtime_ms"), "timestamp_unixtime_ms")
    except RejectedError as err:
        source = SourceRef(source_id=source_id, message_id=_batch_key(batch), request_id=request_id)
        return [], [(None, Rejection(source=source, reason=err.reason, message=err.message, raw=batch))]

    context = _batch_context(header, mpid)
    events: list[Event] = []
    rejections: list[tuple[int | None, Rejection]] = []
    latest: float | None = None
    for index, item in enumerate(events_in):
        try:
            event = _decode_event(item, mpid, received if batch_time is None else batch_time)
        except RejectedError as err:
            message_id = _event_message_id(item, mpid) if isinstance(item, dict) else None
            source = SourceRef(source_id=source_id, message_id=message_id or f"{_batch_key(batch)}:{index}",
                               request_id=request_id)
            # A one-event batch like an event's `raw`: the user and device it needs travel with it (replay).
            rejections.append((index, Rejection(source=source, reason=err.reason, message=err.message,
                                                raw={**header, "events": [item]})))
            continue
        if event is None:
            continue
        name, call, properties, session_id, timestamp, message_id = event
        latest = timestamp if latest is None else max(latest, timestamp)
        events.append(Event(
            kind=EventKind.INTERACTION,
            source=SourceRef(source_id=source_id, message_id=message_id, request_id=request_id),
            timestamp=timestamp, name=name, call=call, user_id=user_id, anonymous_id=anonymous_id,
            session_id=session_id, properties=properties, context=context,
            raw={**header, "events": [item]},
        ))

    when = batch_time if batch_time is not None else (latest if latest is not None else received)
    identify = _identify(batch, header, mpid, user_id, anonymous_id, bool(events_in), context, source_id,
                         request_id, when)
    if identify is not None:
        events.insert(0, identify)  # first: the traits and link precede the batch's interactions
    return events, rejections


def _read_batch(
    batch: Any, user_id_identity: str
) -> tuple[dict[str, Any], list[Any], str | None, str | None, str | None]:
    if not isinstance(batch, dict):
        raise RejectedError("invalid_type", f"a batch must be a JSON object, got {type(batch).__name__}")
    events = batch.get("events")
    if events is None:
        events = []
    elif not isinstance(events, list):
        raise RejectedError("invalid_type", "events: expected a list")
    for field in ("user_identities", "user_attributes"):
        if batch.get(field) is not None and not isinstance(batch[field], dict):
            raise RejectedError("invalid_type", f"{field}: expected an object")
    mpid = parse_mpid(batch.get("mpid"))
    identities = batch.get("user_identities") or {}
    if user_id_identity == "mpid":
        user_id, anonymous_id = mpid, None
    else:
        value = identities.get(user_id_identity)
        if value is None and user_id_identity == "customer_id":
            value = identities.get("customerid")  # the spelling of mParticle's JSON reference examples
        user_id, anonymous_id = _id(value), mpid
    if user_id is None and anonymous_id is None:
        raise RejectedError(
            "missing_identity", f"mpid or user_identities.{user_id_identity}: one of them is required"
        )
    header = {k: v for k, v in batch.items() if k not in _USER_MEMBERS}
    return header, events, mpid, user_id, anonymous_id


def parse_mpid(value: Any) -> str | None:
    """An mpid as the decimal string of a signed 64-bit integer; RejectedError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or isinstance(value, float):
        raise RejectedError("invalid_id", f"mpid: expected a 64-bit integer, got {value!r} ({type(value).__name__})")
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        if not digits.isdigit() or not digits.isascii():
            raise RejectedError("invalid_id", f"mpid: expected a 64-bit integer, got {value!r}")
        value = int(text)
    if not isinstance(value, int):
        raise RejectedError("invalid_id", f"mpid: expected a 64-bit integer, got {type(value).__name__}")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise RejectedError("invalid_id", f"mpid: {value} is outside the signed 64-bit range")
    return str(value)


def _decode_event(
    item: Any, mpid: str | None, default_time: float
) -> tuple[str, str, dict[str, Any], str | None, float, str] | None:
    if not isinstance(item, dict):
        raise RejectedError("invalid_type", f"an event must be a JSON object, got {type(item).__name__}")
    event_type = item.get("event_type")
    if isinstance(event_type, str) and event_type in SKIPPED_TYPES:  # a list or object is unhashable
        return None
    if event_type not in DECODED_TYPES:
        raise RejectedError(
            "unsupported_type", f"event_type: expected one of {', '.join(DECODED_TYPES)} (or a skipped type), "
                                f"got {event_type!r}"
        )
    data = item.get("data")
    if not isinstance(data, dict):
        raise RejectedError("missing_field", "data: an event needs a data object")
    attributes = data.get("custom_attributes") or {}
    if not isinstance(attributes, dict):
        raise RejectedError("invalid_type", "data.custom_attributes: expected an object")
    if event_type == "custom_event":
        name, properties = _required_name(data, "event_name"), dict(attributes)
    elif event_type == "screen_view":
        name, properties = _required_name(data, "screen_name"), dict(attributes)
    else:
        name, properties = _commerce(data, attributes)
    session = data.get("session_uuid") or data.get("session_id")  # the source's session id wins
    timestamp = _millis(data.get("timestamp_unixtime_ms"), "data.timestamp_unixtime_ms")
    return (
        name, event_type, properties, str(session) if session not in (None, "") else None,
        default_time if timestamp is None else timestamp, _event_message_id(item, mpid),
    )


def _required_name(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value.strip():
        raise RejectedError("missing_field", f"data.{field}: required")
    return value


def _commerce(data: dict[str, Any], attributes: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A commerce event: the product action is the name; products keep Segment's field names.

    One interaction per product is the Personalize encoder's job (it fans out `properties.products`).
    """
    properties = dict(attributes)
    if data.get("currency_code") is not None:
        properties["currency"] = data["currency_code"]
    action = data.get("product_action")
    impressions = data.get("product_impressions")
    promotion = data.get("promotion_action")
    if isinstance(action, dict):
        name = action.get("action")
        if not isinstance(name, str) or not name:
            raise RejectedError("missing_field", "data.product_action.action: required")
        for field, renamed in _ACTION_FIELDS.items():
            if action.get(field) is not None:
                properties[renamed] = action[field]
        properties["products"] = _products(action.get("products"), "data.product_action.products")
        return name, properties
    if isinstance(impressions, list) and impressions:
        lists, products = [], []
        for i, impression in enumerate(impressions):
            if not isinstance(impression, dict):
                raise RejectedError("invalid_type", f"data.product_impressions[{i}]: expected an object")
            listed = _products(impression.get("products"), f"data.product_impressions[{i}].products")
            lists.append({"list_id": impression.get("product_impression_list"), "products": listed})
            products += listed
        properties["impressions"], properties["products"] = lists, products
        return IMPRESSION_EVENT, properties
    if isinstance(promotion, dict) and isinstance(promotion.get("action"), str):
        properties["promotions"] = promotion.get("promotions") or []
        return f"promotion_{promotion['action']}", properties
    raise RejectedError("missing_field", "data.product_action.action: a commerce event needs a product action")


def _products(value: Any, path: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RejectedError("invalid_type", f"{path}: expected a list")
    products = []
    for i, product in enumerate(value):
        if not isinstance(product, dict):
            raise RejectedError("invalid_type", f"{path}[{i}]: expected an object")
        extra = product.get("custom_attributes")
        normalised = dict(extra) if isinstance(extra, dict) else {}  # standard fields below win
        product_id = _id(product.get("id"))
        if product_id is not None:  # never a placeholder: a missing id stays missing (no invented data)
            normalised["product_id"] = normalised["sku"] = product_id
        for field, renamed in _PRODUCT_FIELDS.items():
            if product.get(field) is not None:
                normalised[renamed] = product[field]
        products.append(normalised)
    return products


def _identify(
    batch: dict[str, Any], header: dict[str, Any], mpid: str | None, user_id: str | None, anonymous_id: str | None,
    has_events: bool, context: dict[str, Any], source_id: str, request_id: str | None, timestamp: float,
) -> Event | None:
    """The batch's user: an IDENTIFY with `user_attributes` as traits.

    Emitted when the batch has attributes, or has no events but names a user: every interaction
    already carries user id and mpid, so the identity stage links them without a separate identify.
    """
    attributes = batch.get("user_attributes") or {}
    if not attributes and (has_events or user_id is None):
        return None
    identity = {"mpid": mpid, "user_identities": batch.get("user_identities"),
                "user_attributes": attributes}
    digest = hashlib.sha256(msgspec.json.encode(identity, order="sorted")).hexdigest()[:32]
    return Event(
        kind=EventKind.IDENTIFY,
        source=SourceRef(source_id=source_id, message_id=f"sha256:{digest}:identify", request_id=request_id),
        timestamp=timestamp, call="identify", user_id=user_id, anonymous_id=anonymous_id,
        traits=dict(attributes), context=context,
        raw={**header, "user_attributes": attributes,
             **({"deleted_user_attributes": batch["deleted_user_attributes"]}
                if batch.get("deleted_user_attributes") else {}), "events": []},
    )


def _batch_context(header: dict[str, Any], mpid: str | None) -> dict[str, Any]:
    """What the batch says about device, app and environment, shared by its events (read-only)."""
    context = dict(header["context"]) if isinstance(header.get("context"), dict) else {}
    for field in ("device_info", "application_info", "environment", "ip"):
        if header.get(field) is not None:
            context[field] = header[field]
    if mpid is not None:
        context["mpid"] = mpid
    return context


def _millis(value: Any, field: str) -> float | None:
    """A `timestamp_unixtime_ms` as epoch seconds (None when absent); events fall back to the batch's."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RejectedError("invalid_timestamp", f"{field}: expected milliseconds since the epoch, got {value!r}")
    try:
        return to_epoch_secs(float(value) / 1000.0)  # the field is milliseconds whatever its size
    except ValueError as err:
        raise RejectedError("invalid_timestamp", f"{field}: {err}") from None


def _event_message_id(item: dict[str, Any], mpid: Any) -> str:
    """source_message_id, else mParticle's event_id, else a digest of the event (stable on redelivery)."""
    data = item.get("data") if isinstance(item.get("data"), dict) else {}
    given = data.get("source_message_id")
    if isinstance(given, str) and given.strip():
        return given
    event_id = data.get("event_id")
    if isinstance(event_id, int) and not isinstance(event_id, bool):
        return f"mparticle:{event_id}"
    digest = hashlib.sha256(msgspec.json.encode({"mpid": mpid, "event": item}, order="sorted")).hexdigest()
    return f"sha256:{digest[:32]}"


def _batch_key(batch: Any) -> str:
    if isinstance(batch, dict):
        request = batch.get("source_request_id")
        if isinstance(request, str) and request.strip():
            return request
    try:
        return "sha256:" + hashlib.sha256(msgspec.json.encode(batch, order="sorted")).hexdigest()[:32]
    except (TypeError, msgspec.EncodeError):
        return "sha256:" + hashlib.sha256(repr(batch).encode()).hexdigest()[:32]


def _id(value: Any) -> str | None:
    if value is None or isinstance(value, (bool, dict, list)):
        return None
    # Placeholders are missing ids, not ids: Personalize silently drops "null" users
    # (docs/reference/personalize-api.md#placeholder-ids).
    return real_id(value)
