"""Metric attribution expressions and aggregation (attribution.py), in process."""

from __future__ import annotations

import pytest

from local_personalize.attribution import UNDEFINED_SOURCE, Metric, aggregate, report_csv
from local_personalize.errors import InvalidInput


def test_expressions_parse_as_documented():
    assert Metric.parse({"metricName": "c", "eventType": "View", "expression": "SAMPLECOUNT()"}).function == \
        "samplecount"
    total = Metric.parse({"metricName": "m", "eventType": "Purchase", "expression": "SUM(ITEMS.margin)"})
    assert (total.function, total.dataset_type, total.column) == ("sum", "ITEMS", "MARGIN")
    for bad in ("COUNT()", "SUM(PRICE)", "SUM(Users.AGE)", "SAMPLECOUNT(x)", "SUM(Items.PRICE) + 1"):
        with pytest.raises(InvalidInput):
            Metric.parse({"metricName": "x", "eventType": "View", "expression": bad})


def test_aggregate_sums_per_metric_source_and_fifteen_minute_window():
    metrics = [Metric.parse({"metricName": "views", "eventType": "View", "expression": "SAMPLECOUNT()"}),
               Metric.parse({"metricName": "margin", "eventType": "Purchase", "expression": "SUM(Items.MARGIN)"}),
               Metric.parse({"metricName": "paid", "eventType": "Purchase",
                             "expression": "SUM(Interactions.EVENT_VALUE)"})]
    margins = {"a": 2.5, "b": None}
    events = [("View", "a", 900.0, None, {}, "blue"), ("View", "a", 1799.0, None, {}, "blue"),
              ("View", "a", 1800.0, None, {}, None), ("Purchase", "a", 10.0, 20.0, {}, "blue"),
              ("Purchase", "b", 11.0, None, {}, "blue"), ("Click", "a", 12.0, None, {}, "blue")]
    totals = aggregate(metrics, events, lambda item, column: margins[item])
    assert totals == {("views", "View", "samplecount", "blue", 900): 2.0,
                      ("views", "View", "samplecount", UNDEFINED_SOURCE, 1800): 1.0,
                      ("margin", "Purchase", "sum", "blue", 0): 2.5,
                      ("paid", "Purchase", "sum", "blue", 0): 20.0}
    assert report_csv([("views", "View", 2.0, "samplecount", "blue", 900)]).decode().splitlines() == [
        "METRIC_NAME,EVENT_TYPE,VALUE,MATH_FUNCTION,EVENT_ATTRIBUTION_SOURCE,TIMESTAMP",
        "VIEWS,VIEW,2.0,samplecount,blue,900"]
