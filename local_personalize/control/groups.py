"""Control plane: dataset groups, schemas and event trackers (docs/reference/personalize-api.md#operations)."""

from __future__ import annotations

import uuid
from typing import Any

from local_personalize.control.common import (
    ControlContext, dependants, describe, list_page, operation, require_active)
from local_personalize.errors import ResourceAlreadyExists, ResourceInUse
from local_personalize.schemas import parse_schema

DATASET_GROUP_KEYS = ("name", "datasetGroupArn", "status", "creationDateTime", "lastUpdatedDateTime",
                      "failureReason", "domain")
SCHEMA_KEYS = ("name", "schemaArn", "creationDateTime", "lastUpdatedDateTime", "domain")
EVENT_TRACKER_KEYS = ("name", "eventTrackerArn", "status", "creationDateTime", "lastUpdatedDateTime")


@operation("CreateDatasetGroup")
def create_dataset_group(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    arn = ctx.arn(f"dataset-group/{body['name']}")
    doc = {"name": body["name"], "datasetGroupArn": arn, "roleArn": body.get("roleArn"),
           "kmsKeyArn": body.get("kmsKeyArn"), "domain": body.get("domain"), "_tags": body.get("tags") or []}
    ctx.create(arn, "dataset-group", "Dataset group", None, {k: v for k, v in doc.items() if v is not None})
    return {"datasetGroupArn": arn, **({"domain": body["domain"]} if body.get("domain") else {})}


@operation("DescribeDatasetGroup")
def describe_dataset_group(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return {"datasetGroup": describe(ctx.get(body["datasetGroupArn"], "dataset-group", "dataset group"))}


@operation("ListDatasetGroups")
def list_dataset_groups(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_page(ctx, body, "dataset-group", "datasetGroups", DATASET_GROUP_KEYS)


@operation("DeleteDatasetGroup")
def delete_dataset_group(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    group = ctx.get(body["datasetGroupArn"], "dataset-group", "dataset group")
    # AWS refuses while datasets, trackers, solutions, recommenders, filters or a metric attribution remain.
    remaining = dependants(ctx.store, group.arn, ("dataset", "event-tracker", "solution", "recommender", "filter",
                                                  "metric-attribution"))
    if remaining:
        raise ResourceInUse(f"Dataset group {group.arn} still has resources: "
                            + ", ".join(row.arn for row in remaining[:5]))
    ctx.store.delete_resource(group.arn)
    return {}


@operation("CreateSchema")
def create_schema(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    parse_schema(body["schema"])
    arn = ctx.arn(f"schema/{body['name']}")
    doc = {"name": body["name"], "schemaArn": arn, "schema": body["schema"], "domain": body.get("domain")}
    ctx.create(arn, "schema", "Schema", None, {k: v for k, v in doc.items() if v is not None})
    return {"schemaArn": arn}


@operation("DescribeSchema")
def describe_schema(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return {"schema": describe(ctx.get(body["schemaArn"], "schema", "schema"), with_status=False)}


@operation("ListSchemas")
def list_schemas(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_page(ctx, body, "schema", "schemas", SCHEMA_KEYS)


@operation("DeleteSchema")
def delete_schema(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    schema = ctx.get(body["schemaArn"], "schema", "schema")
    in_use = ctx.store.find_resource("dataset", "schemaArn", schema.arn)
    if in_use is not None:
        raise ResourceInUse(f"Schema {schema.arn} is used by dataset {in_use.arn}")
    ctx.store.delete_resource(schema.arn)
    return {}


@operation("CreateEventTracker")
def create_event_tracker(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    group = ctx.get(body["datasetGroupArn"], "dataset-group", "dataset group")
    require_active(group, "Dataset group")
    # One event tracker per dataset group (docs/reference/personalize-api.md#error-codes-and-statuses,
    # ResourceAlreadyExistsException).
    existing = ctx.store.list_resources("event-tracker", group.arn)
    if existing:
        raise ResourceAlreadyExists(f"Dataset group {group.arn} already has event tracker {existing[0].arn}")
    arn = ctx.arn(f"event-tracker/{body['name']}")
    tracking_id = str(uuid.uuid4())
    doc = {"name": body["name"], "eventTrackerArn": arn, "accountId": ctx.settings.account_id,
           "trackingId": tracking_id, "datasetGroupArn": group.arn, "_tags": body.get("tags") or []}
    ctx.create(arn, "event-tracker", "Event tracker", group.arn, doc)
    return {"eventTrackerArn": arn, "trackingId": tracking_id}


@operation("DescribeEventTracker")
def describe_event_tracker(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return {"eventTracker": describe(ctx.get(body["eventTrackerArn"], "event-tracker", "event tracker"))}


@operation("ListEventTrackers")
def list_event_trackers(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_page(ctx, body, "event-tracker", "eventTrackers", EVENT_TRACKER_KEYS, body.get("datasetGroupArn"))


@operation("DeleteEventTracker")
def delete_event_tracker(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    tracker = ctx.get(body["eventTrackerArn"], "event-tracker", "event tracker")
    ctx.store.delete_resource(tracker.arn)
    return {}
