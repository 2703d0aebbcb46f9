"""Control plane: metric attributions (Create/Describe/List/Update/Delete, ListMetricAttributionMetrics).

https://docs.aws.amazon.com/personalize/latest/dg/API_CreateMetricAttribution.html
"""

from __future__ import annotations

from typing import Any

from local_personalize import ingest  # the module, not its names: ingest imports this package while it loads
from local_personalize.attribution import Metric, attribution_changed, check_columns, group_attribution
from local_personalize.control.common import ControlContext, describe, list_page, operation
from local_personalize.errors import InvalidInput, ResourceAlreadyExists
from local_personalize.objects import ObjectStore

ATTRIBUTION_KEYS = ("name", "metricAttributionArn", "status", "creationDateTime", "lastUpdatedDateTime",
                    "failureReason")
# A metric attribution holds at most 10 metrics (botocore MetricAttributes max).
MAX_METRICS = 10


def _checked(ctx: ControlContext, group_arn: str, metrics: list[dict], output: dict[str, Any]) -> None:
    if len(metrics) > MAX_METRICS:
        raise InvalidInput(f"A metric attribution can have at most {MAX_METRICS} metrics")
    names = [metric["metricName"] for metric in metrics]
    if len(set(names)) != len(names):
        raise InvalidInput("metricName values must be unique within a metric attribution")
    schemas = {kind: ingest.dataset_schema(ctx.store, dataset) for kind in ("ITEMS", "INTERACTIONS")
               if (dataset := ingest.group_dataset(ctx.store, group_arn, kind)) is not None}
    check_columns([Metric.parse(metric) for metric in metrics], schemas)
    path = (output.get("s3DataDestination") or {}).get("path")
    if path:
        ObjectStore.for_settings(ctx.settings).check(path)


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key != "_metrics"}


@operation("CreateMetricAttribution")
def create_metric_attribution(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    group = ctx.get(body["datasetGroupArn"], "dataset-group", "dataset group")
    existing = group_attribution(ctx.store, group.arn)
    if existing is not None:
        # One metric attribution per dataset group (measuring-recommendation-impact.html).
        raise ResourceAlreadyExists(f"Dataset group {group.arn} already has metric attribution {existing.arn}")
    _checked(ctx, group.arn, body["metrics"], body["metricsOutputConfig"])
    arn = ctx.arn(f"metric-attribution/{body['name']}")
    ctx.create(arn, "metric-attribution", "Metric attribution", group.arn, {
        "name": body["name"], "metricAttributionArn": arn, "datasetGroupArn": group.arn,
        "metricsOutputConfig": body["metricsOutputConfig"], "_metrics": body["metrics"]})
    attribution_changed(ctx.store, group.arn)
    return {"metricAttributionArn": arn}


@operation("DescribeMetricAttribution")
def describe_metric_attribution(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    attribution = ctx.get(body["metricAttributionArn"], "metric-attribution", "metric attribution")
    return {"metricAttribution": _public(describe(attribution))}


@operation("ListMetricAttributions")
def list_metric_attributions(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_page(ctx, body, "metric-attribution", "metricAttributions", ATTRIBUTION_KEYS,
                     body.get("datasetGroupArn"))


@operation("ListMetricAttributionMetrics")
def list_metric_attribution_metrics(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    if not body.get("metricAttributionArn"):
        raise InvalidInput("metricAttributionArn is required")
    attribution = ctx.get(body["metricAttributionArn"], "metric-attribution", "metric attribution")
    return {"metrics": attribution.doc["_metrics"]}  # at most 10: always one page


@operation("UpdateMetricAttribution")
def update_metric_attribution(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    if not body.get("metricAttributionArn"):
        raise InvalidInput("metricAttributionArn is required")
    attribution = ctx.get(body["metricAttributionArn"], "metric-attribution", "metric attribution")
    removed = set(body.get("removeMetrics") or [])
    unknown = removed - {metric["metricName"] for metric in attribution.doc["_metrics"]}
    if unknown:
        raise InvalidInput(f"removeMetrics names metrics this attribution does not have: {sorted(unknown)}")
    kept = [metric for metric in attribution.doc["_metrics"] if metric["metricName"] not in removed]
    metrics = kept + (body.get("addMetrics") or [])
    output = body.get("metricsOutputConfig") or attribution.doc["metricsOutputConfig"]
    _checked(ctx, attribution.parent_arn, metrics, output)
    ctx.store.update_resource(attribution.arn, _metrics=metrics, metricsOutputConfig=output)
    attribution_changed(ctx.store, attribution.parent_arn)
    return {"metricAttributionArn": attribution.arn}


@operation("DeleteMetricAttribution")
def delete_metric_attribution(ctx: ControlContext, body: dict[str, Any]) -> dict[str, Any]:
    attribution = ctx.get(body["metricAttributionArn"], "metric-attribution", "metric attribution")
    ctx.store.delete_attribution_metrics(attribution.arn)
    ctx.store.delete_resource(attribution.arn)
    attribution_changed(ctx.store, attribution.parent_arn)
    return {}
