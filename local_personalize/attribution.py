"""Metric attribution: per-event-type metrics by event attribution source, from PutEvents and imports.

A metric is `SAMPLECOUNT()` or `SUM(Items.COLUMN)` / `SUM(Interactions.COLUMN)` over the events of one
type, in 15-minute windows, per EVENT_ATTRIBUTION_SOURCE (`metricAttribution.eventAttributionSource` of
PutEvents, the column of that name in imported interactions, else SOURCE_NAME_UNDEFINED). Imports with
publishAttributionMetricsToS3 write a CSV report to the attribution's S3 path
(https://docs.aws.amazon.com/personalize/latest/dg/metric-attribution-results-s3.html); PutEvents metrics
go to CloudWatch as AWS sends them: namespace AWS/Personalize, the metric name upper-cased, dimensions
EventAttributionSource (upper-cased) and DatasetGroupArn (as AWS's measuring-impact sample reads them).
"""

from __future__ import annotations

import csv
import functools
import io
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3

from local_personalize.errors import InvalidInput
from local_personalize.objects import ObjectStore, join
from local_personalize.settings import Settings
from local_personalize.store import Resource, Store

# Reports aggregate over 15 minutes, the finest CloudWatch period AWS offers for them (metric-attribution-results).
WINDOW_SECS = 900
UNDEFINED_SOURCE = "SOURCE_NAME_UNDEFINED"
REPORT_HEADER = ("METRIC_NAME", "EVENT_TYPE", "VALUE", "MATH_FUNCTION", "EVENT_ATTRIBUTION_SOURCE", "TIMESTAMP")
_SAMPLECOUNT = re.compile(r"\s*SAMPLECOUNT\(\s*\)\s*", re.IGNORECASE)
_SUM = re.compile(r"\s*SUM\(\s*(Items|Interactions)\.([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", re.IGNORECASE)
NUMERIC = {"int", "long", "float", "double"}

# (event type, item id, timestamp, event value, properties, source) of one event
Event = tuple[str, str, float, "float | None", dict[str, Any], "str | None"]


@dataclass(frozen=True)
class Metric:
    name: str
    event_type: str
    function: str  # "samplecount" or "sum", as the report's MATH_FUNCTION column spells it
    dataset_type: str | None = None  # "ITEMS" or "INTERACTIONS" for sum
    column: str | None = None

    @classmethod
    def parse(cls, metric: dict[str, str]) -> Metric:
        expression = metric["expression"]
        if _SAMPLECOUNT.fullmatch(expression):
            return cls(metric["metricName"], metric["eventType"], "samplecount")
        found = _SUM.fullmatch(expression)
        if found is None:
            raise InvalidInput(f"Metric {metric['metricName']}: expression must be SAMPLECOUNT() or "
                               f"SUM(Items.COLUMN) / SUM(Interactions.COLUMN)")
        return cls(metric["metricName"], metric["eventType"], "sum", found.group(1).upper(), found.group(2).upper())

    def value(self, event: Event, item_value: Callable[[str, str], Any]) -> float | None:
        if self.function == "samplecount":
            return 1.0
        _type, item_id, _ts, event_value, properties, _source = event
        if self.dataset_type == "ITEMS":
            raw = item_value(item_id, self.column)
        else:
            raw = event_value if self.column == "EVENT_VALUE" else properties.get(self.column)
        return float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None


def metrics_of(attribution: Resource) -> list[Metric]:
    return [Metric.parse(metric) for metric in attribution.doc["_metrics"]]


def check_columns(metrics: list[Metric], schemas: dict[str, Any]) -> None:
    """SUM() needs a numeric column of the group's Items or Interactions schema (creating-metric-attribution)."""
    for metric in metrics:
        if metric.function != "sum":
            continue
        schema = schemas.get(metric.dataset_type)
        field = schema.field(metric.column) if schema is not None else None
        if field is None or not field.types & NUMERIC:
            raise InvalidInput(f"Metric {metric.name}: {metric.dataset_type.title()}.{metric.column} is not a "
                               f"numeric column of the dataset group's {metric.dataset_type.title()} dataset")


# (database, dataset group) → its metric attribution: PutEvents asks on every call (a lookup measured at
# ~30 µs of a ~120 µs call), the control plane changes it rarely and says so (attribution_changed).
_by_group: dict[tuple[str, str], Resource | None] = {}


def group_attribution(store: Store, dataset_group_arn: str) -> Resource | None:
    key = (str(store.path), dataset_group_arn)
    if key not in _by_group:
        found = store.list_resources("metric-attribution", dataset_group_arn)
        _by_group[key] = found[0] if found else None
    return _by_group[key]


def attribution_changed(store: Store, dataset_group_arn: str) -> None:
    _by_group.pop((str(store.path), dataset_group_arn), None)


def aggregate(metrics: list[Metric], events: Iterable[Event], item_value: Callable[[str, str], Any]) -> dict:
    """(metric name, event type, function, source, window start) → summed value."""
    totals: dict[tuple, float] = defaultdict(float)
    by_type: dict[str, list[Metric]] = defaultdict(list)
    for metric in metrics:
        by_type[metric.event_type].append(metric)
    for event in events:
        for metric in by_type.get(event[0], ()):
            value = metric.value(event, item_value)
            if value is not None:
                window = int(event[2]) // WINDOW_SECS * WINDOW_SECS
                totals[(metric.name, metric.event_type, metric.function, event[5] or UNDEFINED_SOURCE, window)] += value
    return totals


def item_lookup(store: Store, items_dataset_arn: str | None) -> Callable[[str, str], Any]:
    def value(item_id: str, column: str) -> Any:
        record = store.record(items_dataset_arn, item_id) if items_dataset_arn else None
        return (record or {}).get(column)
    return value


def record_put_events(store: Store, dataset_group_arn: str, events: list[Event],
                      items_dataset_arn: Callable[[], str | None]) -> None:
    """Fold PutEvents into the group's running aggregates, if it has a metric attribution."""
    attribution = group_attribution(store, dataset_group_arn)
    if attribution is None:
        return
    totals = aggregate(metrics_of(attribution), events, item_lookup(store, items_dataset_arn()))
    store.add_attribution_metrics(attribution.arn, [(*key, value) for key, value in totals.items()])


class ImportCollector:
    """Passes imported interaction rows through while aggregating them for the import's S3 report."""

    def __init__(self, metrics: list[Metric], item_value: Callable[[str, str], Any]) -> None:
        self.metrics, self.item_value = metrics, item_value
        self.events: list[Event] = []

    def watch(self, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            if row.get("EVENT_TYPE") is not None:
                self.events.append((row["EVENT_TYPE"], row["ITEM_ID"], float(row["TIMESTAMP"]), row.get("EVENT_VALUE"),
                                    row, row.get("EVENT_ATTRIBUTION_SOURCE")))
            yield row

    def report(self) -> bytes:
        totals = aggregate(self.metrics, self.events, self.item_value)
        return report_csv([(name, event_type, value, function, source, window)
                           for (name, event_type, function, source, window), value in sorted(totals.items())])


def report_csv(rows: list[tuple]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REPORT_HEADER)
    for name, event_type, value, function, source, window in rows:
        # Upper-cased names, as in AWS's example report (metric-attribution-results-s3.html).
        writer.writerow([name.upper(), event_type.upper(), float(value), function, source, int(window)])
    return out.getvalue().encode()


def write_report(objects: ObjectStore, attribution: Resource, method: str, content: bytes) -> str | None:
    """`AggregatedAttributionMetrics - <method> - <timestamp>.csv` in the attribution's S3 path, if it has one."""
    destination = (attribution.doc["metricsOutputConfig"].get("s3DataDestination") or {}).get("path")
    if not destination:
        return None
    stamp = time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime()) + f"-{time.time_ns() % 1_000_000_000:09d}"
    url = join(destination, f"AggregatedAttributionMetrics - {method} - {stamp}.csv")
    objects.write(url, content)
    return url


CLOUDWATCH_NAMESPACE = "AWS/Personalize"
# PutMetricData takes at most 1000 metric data items per call (CloudWatch API reference).
MAX_METRIC_DATA = 1000


@functools.cache
def _cloudwatch(endpoint_url: str | None, region: str):
    # Credentials come from boto3's usual chain, as for S3 (objects.py).
    return boto3.client("cloudwatch", endpoint_url=endpoint_url, region_name=region)


def put_cloudwatch_metrics(settings: Settings, found: Resource, rows: list[tuple]) -> None:
    """Send (metric name, event type, source, window start, delta) rows of one attribution to CloudWatch."""
    data = [{"MetricName": name.upper(), "Timestamp": float(window), "Value": float(delta), "Dimensions": [
        {"Name": "EventAttributionSource", "Value": source.upper()},
        {"Name": "DatasetGroupArn", "Value": found.parent_arn}]} for name, _type, source, window, delta in rows]
    client = _cloudwatch(settings.cloudwatch_endpoint_url or settings.s3_endpoint_url, settings.region)
    for start in range(0, len(data), MAX_METRIC_DATA):
        client.put_metric_data(Namespace=CLOUDWATCH_NAMESPACE, MetricData=data[start:start + MAX_METRIC_DATA])
