"""personalize-events: PutEvents, PutItems, PutUsers, PutActions, PutActionInteractions (docs/reference/personalize-api.md#ingestion).

Handlers run on the store thread: they check the request against the dataset schema, write it to SQLite
at once (filters see it within seconds, docs/reference/personalize-api.md#data-freshness) and return what the live
models should fold in.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import orjson

from local_personalize import attribution
from local_personalize.control.common import require_active, settle
from local_personalize.errors import InvalidInput, ResourceNotFound
from local_personalize.schemas import DatasetSchema, parse_schema
from local_personalize.store import Resource, Store
from local_personalize.validation import parse_properties


@dataclass
class Ingested:
    """What a Put* call changed, for the live models: new interactions or changed records."""

    dataset_group_arn: str
    dataset_type: str
    # (user or session id, item id, timestamp, event type, event value), as Model.observe takes them
    interactions: list[tuple[str, str, float, str | None, float | None]] = field(default_factory=list)
    last_seq: int = 0  # store sequence number of the newest row written, to skip events a replay saw


@functools.lru_cache(maxsize=256)
def _schema(text: str) -> DatasetSchema:
    return parse_schema(text)


def dataset_schema(store: Store, dataset: Resource) -> DatasetSchema:
    schema = store.get_resource(dataset.doc["schemaArn"])
    if schema is None:
        raise ResourceNotFound(f"Schema {dataset.doc['schemaArn']} of dataset {dataset.arn} no longer exists")
    return _schema(schema.doc["schema"])


def group_dataset(store: Store, dataset_group_arn: str, dataset_type: str) -> Resource | None:
    return next((d for d in store.list_resources("dataset", dataset_group_arn)
                 if d.doc["datasetType"] == dataset_type), None)


def _tracked_dataset(store: Store, tracking_id: str, dataset_type: str) -> Resource:
    if dataset_type == "INTERACTIONS":
        tracker = store.find_resource("event-tracker", "trackingId", tracking_id)
        if tracker is None:
            raise ResourceNotFound(f"No event tracker has trackingId {tracking_id}")
        require_active(settle(store, tracker), "Event tracker")
        dataset = group_dataset(store, tracker.parent_arn, "INTERACTIONS")
        if dataset is None:
            raise ResourceNotFound(f"Dataset group {tracker.parent_arn} has no Interactions dataset")
    else:
        dataset = store.find_resource("dataset", "trackingId", tracking_id)
        if dataset is None:
            raise ResourceNotFound(f"No Action interactions dataset has trackingId {tracking_id}")
    require_active(settle(store, dataset), "Dataset")
    return dataset


def _properties(schema: DatasetSchema, text: str | None, where: str) -> dict[str, Any]:
    return {} if text is None else schema.coerce_properties(parse_properties(text, where), where)


def put_events(store: Store, body: dict[str, Any]) -> Ingested:
    dataset = _tracked_dataset(store, body["trackingId"], "INTERACTIONS")
    schema = dataset_schema(store, dataset)
    user_id, session_id = body.get("userId"), body["sessionId"]
    rows, folded, attributed = [], [], []
    for position, event in enumerate(body["eventList"], start=1):
        where = f"eventList.{position}.member"
        properties = _properties(schema, event.get("properties"), f"{where}.properties")
        # The item may come as the ITEM_ID field in `properties` ('{"itemId": "270"}'), as AWS's getting-started
        # notebooks send it (https://github.com/aws-samples/amazon-personalize-samples, getting_started/notebooks/
        # 2.View_Campaign_And_Interactions.ipynb); the top-level itemId wins.
        in_properties = properties.pop("ITEM_ID", None)
        item_id = event.get("itemId") or in_properties
        if not item_id:
            # The Interactions schema requires ITEM_ID (docs/reference/personalize-api.md#dataset-schemas): an event
            # without one is not invented into one.
            raise InvalidInput(f"itemId is required at '{where}' for an Interactions dataset")
        impression = "|".join(event["impression"]) if event.get("impression") else None
        rows.append((user_id, item_id, session_id, float(event["sentAt"]), event["eventType"],
                     event.get("eventValue"), event.get("eventId"), impression, event.get("recommendationId"),
                     orjson.dumps(properties).decode() if properties else None, "event"))
        folded.append((user_id or session_id, item_id, float(event["sentAt"]), event["eventType"],
                       event.get("eventValue")))
        attributed.append((event["eventType"], item_id, float(event["sentAt"]), event.get("eventValue"),
                           properties, (event.get("metricAttribution") or {}).get("eventAttributionSource")))
    store.insert_interactions(dataset.arn, rows)
    attribution.record_put_events(store, dataset.parent_arn, attributed,
                                  lambda: getattr(group_dataset(store, dataset.parent_arn, "ITEMS"), "arn", None))
    if user_id is not None:
        store.claim_anonymous_session(dataset.arn, session_id, user_id)
    return Ingested(dataset.parent_arn, "INTERACTIONS", folded, store.last_interaction_seq())


def put_action_interactions(store: Store, body: dict[str, Any]) -> Ingested:
    dataset = _tracked_dataset(store, body["trackingId"], "ACTION_INTERACTIONS")
    schema = dataset_schema(store, dataset)
    rows = []
    for position, event in enumerate(body["actionInteractions"], start=1):
        properties = _properties(schema, event.get("properties"), f"actionInteractions.{position}.member.properties")
        impression = "|".join(event["impression"]) if event.get("impression") else None
        rows.append((event.get("userId"), event["actionId"], event["sessionId"], float(event["timestamp"]),
                     event["eventType"], None, event.get("eventId"), impression, event.get("recommendationId"),
                     orjson.dumps(properties).decode() if properties else None, "event"))
    store.insert_interactions(dataset.arn, rows)
    return Ingested(dataset.parent_arn, "ACTION_INTERACTIONS")


def _put_records(store: Store, body: dict[str, Any], dataset_type: str, list_key: str, id_key: str) -> Ingested:
    dataset = store.get_resource(body["datasetArn"])
    if dataset is None or dataset.kind != "dataset":
        raise ResourceNotFound(f"Could not find dataset with ARN {body['datasetArn']}")
    if dataset.doc["datasetType"] != dataset_type:
        raise InvalidInput(f"Dataset {dataset.arn} is a {dataset.doc['datasetType']} dataset, not {dataset_type}")
    require_active(settle(store, dataset), "Dataset")
    schema = dataset_schema(store, dataset)
    records = []
    for position, record in enumerate(body[list_key], start=1):
        properties = _properties(schema, record.get("properties"), f"{list_key}.{position}.member.properties")
        records.append((record[id_key], {id_key.upper().replace("ID", "_ID"): record[id_key], **properties}))
    store.upsert_records(dataset.arn, records, source="event")
    return Ingested(dataset.parent_arn, dataset_type)


def put_items(store: Store, body: dict[str, Any]) -> Ingested:
    return _put_records(store, body, "ITEMS", "items", "itemId")


def put_users(store: Store, body: dict[str, Any]) -> Ingested:
    return _put_records(store, body, "USERS", "users", "userId")


def put_actions(store: Store, body: dict[str, Any]) -> Ingested:
    return _put_records(store, body, "ACTIONS", "actions", "actionId")


HANDLERS = {"PutEvents": put_events, "PutItems": put_items, "PutUsers": put_users, "PutActions": put_actions,
            "PutActionInteractions": put_action_interactions}
