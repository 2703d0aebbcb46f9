"""Mapping: a decoded event → the Personalize records it becomes (interactions, items, users), by config.

Interactions get `eventId` from the source message id (`event_id_for`, so redelivery is idempotent) and
`sentAt` from the one normalised timestamp. Nothing is invented: an interaction or item without an id
is rejected with `missing_item_id`, a profile without a user with `missing_user_id`. Events outside the
allow-list are skipped and counted in `hub_events_skipped_total{reason}`. `properties` leaves as a map
of allow-listed values; the record rules (validation.py) check them against the schema and encode the
JSON string. Each (call, name) is planned once: what it becomes and how (`Plan`), so routing
(`kind_of`) and mapping share one lookup.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

from connectors.destinations.personalize.mapping import defaults
from connectors.destinations.personalize.mapping.config import InteractionRule, MappingConfig
from connectors.destinations.personalize.mapping.fields import collect, property_table
from connectors.destinations.personalize.mapping.paths import (
    FieldPath,
    Scopes,
    compile_paths,
    describe,
    first_value,
    resolve,
)
from connectors.destinations.personalize.schema import (
    INTERACTIONS,
    ITEMS,
    USERS,
    DatasetSchema,
    camel_case,
    id_text,
    impression_ids,
)
from connectors.destinations.personalize.unit import PersonalizeRecord
from hub import telemetry
from hub.errors import RejectedError
from hub.events import Event, EventKind, Rejection, event_id_for
from hub.ids import is_placeholder_id

Mapped = list[PersonalizeRecord | Rejection] | Rejection
"""One event's records ([] when skipped; a bad order line is a Rejection among its siblings), or why not."""


class Plan(NamedTuple):
    """What one (call, name) of an interaction-kind event becomes: its record kind (None: skipped) and how."""

    kind: EventKind | None
    action: str  # interaction | item_upsert | item_removal | list_view | skip
    event_type: str | None = None
    per_product: bool = False


_SKIP = Plan(None, "skip")
# Members bound once: `EventKind.X` costs a metaclass attribute lookup (~70 ns on CPython 3.11) per use.
_INTERACTION, _ITEM, _USER, _IDENTIFY = EventKind.INTERACTION, EventKind.ITEM, EventKind.USER, EventKind.IDENTIFY
_MAX_PLANS = 10_000  # distinct (call, name) pairs remembered; a stream of ever new names is planned each time
_NO_PRODUCT: dict[str, Any] = {}


class Mapper:
    """Maps each event by its kind and planned name; children derived per product."""

    def __init__(self, config: MappingConfig | None = None, schemas: Mapping[str, DatasetSchema | None] | None = None):
        config = config or MappingConfig()
        schemas = schemas or {}
        interactions, items = config.interactions, config.items
        self._rules = {name: rule or InteractionRule() for name, rule in interactions.events.items()}
        self._call_types = dict(interactions.call_event_types)
        self._event_calls = frozenset(interactions.event_calls)
        self._item_id = compile_paths(interactions.item_id)
        self._event_value = compile_paths(interactions.event_value)
        self._impression = compile_paths(interactions.impression)
        self._recommendation_id = compile_paths(interactions.recommendation_id)
        self._attribution = compile_paths(interactions.event_attribution_source)
        self._list_views = frozenset(interactions.list_view_events)
        self._lists = _ListMemory(interactions.max_list_sessions)
        self._upserts, self._removals = frozenset(items.upsert_events), frozenset(items.removal_events)
        self._catalog_item_id = compile_paths(items.item_id)
        self._plans: dict[tuple[str | None, str | None], Plan] = {}

        events_schema, items_schema = schemas.get(INTERACTIONS), schemas.get(ITEMS)
        self._send_value = events_schema is None or events_schema.has("EVENT_VALUE")
        self._send_impression = events_schema is None or events_schema.has("IMPRESSION")
        self._event_fields = property_table("mapping.interactions", INTERACTIONS, interactions.properties,
                                            events_schema, {}, ("product", "properties"))
        self._item_fields = property_table("mapping.items", ITEMS, items.properties, items_schema,
                                           defaults.ITEM_PROPERTIES, ("product",))
        self._user_fields = property_table("mapping.users", USERS, config.users.properties, schemas.get(USERS),
                                           defaults.USER_PROPERTIES, ("traits",))
        removal = items.removal_field
        if removal is not None and items_schema is not None and camel_case(removal) not in items_schema.by_key:
            removal = None  # removals are then rejected with `removal_not_configured`, naming the setting
        self._removal_key = camel_case(removal) if removal else None
        self._removal_value, self._available_value = items.removal_value, items.available_value
        self._skipped = {reason: telemetry.EVENTS_SKIPPED.labels(reason) for reason in
                         ("unmapped_event", "list_view", "no_user_properties", "alias")}

    def kind_of(self, event: Event) -> EventKind | None:
        """The kind of record `event` becomes (what routes it to PutEvents, PutItems or PutUsers); None: none."""
        kind = event.kind
        if kind is _INTERACTION:
            plan = self._plans.get((event.call, event.name)) or self.plan(event.call, event.name)
            return plan.kind
        if kind is _ITEM:
            return kind
        if kind is _USER or kind is _IDENTIFY:
            return _USER
        return None

    def plan(self, call: str | None, name: str | None) -> Plan:
        """The plan of an interaction-kind event with this call and name, made once and remembered."""
        plan = self._plans.get((call, name))
        if plan is None:
            plan = self._make_plan(call, name)
            if len(self._plans) < _MAX_PLANS:
                self._plans[(call, name)] = plan
        return plan

    def _make_plan(self, call: str | None, name: str | None) -> Plan:
        rule = None
        if call is None or call in self._event_calls:
            if name in self._removals:
                return Plan(EventKind.ITEM, "item_removal")
            if name in self._upserts:
                return Plan(EventKind.ITEM, "item_upsert")
            if name in self._list_views:
                return Plan(EventKind.INTERACTION, "list_view")
            rule = self._rules.get(name)  # type: ignore[arg-type]
        elif call in self._call_types:
            rule = InteractionRule(event_type=self._call_types[call])
        if rule is None or (not name and rule.event_type is None):
            return _SKIP
        return Plan(EventKind.INTERACTION, "interaction", rule.event_type or name, rule.per_product)

    def map(self, event: Event) -> Mapped:
        """One event → its records ([] when skipped), or a Rejection naming the missing field."""
        try:
            kind = event.kind
            if kind is _INTERACTION:
                plan = self._plans.get((event.call, event.name)) or self.plan(event.call, event.name)
                return self._interaction_event(event, plan)
            if kind is _ITEM:
                return self._item(event, removal=event.name in self._removals)
            if kind is _USER:
                return self._user(event, event.traits or event.properties, explicit=True)
            if kind is _IDENTIFY:
                return self._user(event, event.traits, explicit=False)
            self._skipped["alias"].inc()  # the identity stage consumes aliases; without it they mean nothing
            return []
        except RejectedError as err:
            return Rejection(source=event.source, reason=err.reason, message=err.message, raw=event.raw)

    def _interaction_event(self, event: Event, plan: Plan) -> Mapped:
        action = plan.action
        if action != "interaction":
            if action == "item_upsert" or action == "item_removal":
                return self._item(event, removal=action == "item_removal")
            if action == "list_view":
                self._remember_list(event)
                self._skipped["list_view"].inc()
            else:
                self._skipped["unmapped_event"].inc()
            return []
        event_type = plan.event_type
        scopes = {"properties": event.properties, "context": event.context, "traits": event.traits}
        if not plan.per_product:
            scopes["product"] = event.properties
            record = self._interaction(event, scopes, event_type, event.source.message_id)  # type: ignore[arg-type]
            if self._lists:  # a product list is remembered for some session
                self._attach_list(event.session_id, [record])
            return [PersonalizeRecord(event, event.source, _INTERACTION, record)]
        products = event.properties.get("products")
        if not isinstance(products, list) or not products:
            raise RejectedError("missing_item_id", f"properties.products: {event.name} needs at least one product")
        children: list[PersonalizeRecord | Rejection] = []
        records = []
        for index, product in enumerate(products):
            source = event.source.child(index)
            try:
                if not isinstance(product, dict):
                    raise RejectedError("invalid_product", f"expected an object, got {type(product).__name__}")
                record = self._interaction(event, {**scopes, "product": product}, event_type,  # type: ignore[arg-type]
                                           source.message_id)
            except RejectedError as err:
                message = f"properties.products[{index}]: {err.message}"
                children.append(Rejection(source=source, reason=err.reason, message=message, raw=event.raw))
                continue
            records.append(record)
            children.append(PersonalizeRecord(event, source, _INTERACTION, record))
        self._attach_list(event.session_id, records)
        return children

    def _interaction(self, event: Event, scopes: Scopes, event_type: str, message_id: str) -> dict[str, Any]:
        record: dict[str, Any] = {
            "eventId": message_id if 0 < len(message_id) <= 256 else event_id_for(message_id),  # event_id_for's rule
            "eventType": event_type,
            "sentAt": event.timestamp,
            "itemId": _required_id(self._item_id, scopes, "item_id", event.name, "an interaction needs an item id"),
        }
        if self._send_value:
            path, value = first_value(self._event_value, scopes)
            if path is not None:
                record["eventValue"] = _number(value, path)
        if self._send_impression:
            path, value = first_value(self._impression, scopes)
            if path is not None and (impression := impression_ids(value)):
                record["impression"] = impression
        recommendation_id = _optional_id(self._recommendation_id, scopes)
        if recommendation_id is not None:
            record["recommendationId"] = recommendation_id
        if self._attribution and (attribution := _optional_id(self._attribution, scopes)) is not None:
            record["metricAttribution"] = {"eventAttributionSource": attribution}
        if self._event_fields and (properties := collect(self._event_fields, scopes)):
            record["properties"] = properties
        return record

    def _item(self, event: Event, *, removal: bool) -> Mapped:
        scopes = {"properties": event.properties, "product": event.properties, "context": event.context,
                  "traits": event.traits}
        item_id = _required_id(self._catalog_item_id, scopes, "item_id", event.name or "item", "needs an item id")
        properties = collect(self._item_fields, scopes)
        if removal:
            if self._removal_key is None:
                raise RejectedError("removal_not_configured", f"{event.name}: the Items schema has no field for "
                                    "mapping.items.removal_field, so a removal cannot be recorded")
            properties[self._removal_key] = self._removal_value
        elif self._removal_key is not None and self._available_value is not None:
            properties.setdefault(self._removal_key, self._available_value)
        return [PersonalizeRecord(event, event.source, _ITEM, {"itemId": item_id, "properties": properties})]

    def _user(self, event: Event, traits: dict[str, Any], *, explicit: bool) -> Mapped:
        scopes = {"traits": traits, "properties": event.properties, "context": event.context, "product": _NO_PRODUCT}
        properties = collect(self._user_fields, scopes)
        if not properties and not explicit:
            self._skipped["no_user_properties"].inc()  # an identify that only links ids: nothing to send
            return []
        user_id = id_text(event.user_id, "userId", "user_id")
        if user_id is None:
            raise RejectedError("missing_user_id", "userId: a profile needs a user id (anonymous traits are not sent)")
        return [PersonalizeRecord(event, event.source, _USER, {"userId": user_id, "properties": properties})]

    def _remember_list(self, event: Event) -> None:
        if not event.session_id or not self._send_impression:
            return
        products = event.properties.get("products")
        shown: dict[str, None] = {}
        for product in products if isinstance(products, list) else ():
            if isinstance(product, dict):
                item_id = _optional_id(self._item_id, {"product": product})
                if item_id is not None:
                    shown.setdefault(item_id, None)
        if shown:
            scopes = {"properties": event.properties, "product": event.properties, "context": event.context}
            self._lists.put(event.session_id, (impression_ids(list(shown)), _optional_id(self._recommendation_id, scopes)))

    def _attach_list(self, session_id: str | None, records: list[dict[str, Any]]) -> None:
        """Give the session's last product list, as impression, to interactions with an item from it."""
        if not session_id or not self._lists:
            return
        shown = self._lists.get(session_id)
        if shown is None:
            return
        impression, recommendation_id = shown
        used = False
        for record in records:
            if record["itemId"] in impression and "impression" not in record:
                record["impression"] = list(impression)
                if recommendation_id is not None:
                    record.setdefault("recommendationId", recommendation_id)
                used = True
        if used:
            self._lists.pop(session_id, None)  # one interaction per list view: a later one is not from that list


class _ListMemory(OrderedDict[str, tuple[list[str], str | None]]):
    """session id → the last product list shown in it (impression ids, recommendationId); bounded LRU.

    The mapping itself (an OrderedDict): its truth test, `get` and `pop(session_id, None)` run per
    interaction, and as the dict's own they cost no Python call."""

    def __init__(self, max_sessions: int):
        super().__init__()
        self.max_sessions = max_sessions

    def put(self, session_id: str, shown: tuple[list[str], str | None]) -> None:
        if self.max_sessions <= 0:
            return
        self[session_id] = shown
        self.move_to_end(session_id)
        if len(self) > self.max_sessions:
            self.popitem(last=False)


def _required_id(paths: tuple[FieldPath, ...], scopes: Scopes, code: str, name: str | None, why: str) -> str:
    for path in paths:
        if (key := path.single) is not None:  # resolve's common case inline: a call less per path and event
            node = scopes.get(path.scope)
            value = node.get(key) if type(node) is dict else None
        else:
            value = resolve(path, scopes)
        if value is not None and (text := id_text(value, path.text, code)) is not None:
            return text
    raise RejectedError(f"missing_{code}", f"{describe(paths)}: missing; {name}: {why}")


def _optional_id(paths: tuple[FieldPath, ...], scopes: Scopes) -> str | None:
    for path in paths:
        if (key := path.single) is not None:  # resolve's common case inline: a call less per path and event
            node = scopes.get(path.scope)
            value = node.get(key) if type(node) is dict else None
        else:
            value = resolve(path, scopes)
        if value is not None and not isinstance(value, (dict, list, bool)):
            text = value if isinstance(value, str) else str(value)
            if not is_placeholder_id(text):
                return text
    return None


def _number(value: Any, path: FieldPath) -> float:
    """eventValue: a number or a numeric string; anything else is rejected, never guessed ("3.4abc")."""
    if not isinstance(value, bool):
        try:
            number = float(value) if isinstance(value, (int, float, str)) else math.nan
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
    raise RejectedError("invalid_event_value", f"{path.text}: {value!r:.80} is not a number")
