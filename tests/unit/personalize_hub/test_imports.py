"""hub import's parts without services: column plans, rows through validation, the tally, throttling retries."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from connectors.destinations.personalize.schema import parse_schema
from connectors.destinations.personalize.validation import RecordRules
from hub.delivery.retry import RetryPolicy
from hub.errors import RejectedError
from personalize_hub.imports.columnar import table_of
from personalize_hub.imports.rows import ColumnsMismatch, TabularRows, export_dialect, plan_columns
from personalize_hub.imports.source import Utf8Lines
from personalize_hub.imports.tally import Tally
from workers.personalize import retrying

SCHEMA = parse_schema(json.dumps({
    "type": "record", "name": "Interactions", "version": "1.0",
    "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
               {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
               {"name": "DEVICE", "type": ["null", "string"], "categorical": True},
               {"name": "RATING", "type": ["null", "int"]}]}))


def rows_of(header: list[str]) -> TabularRows:
    return TabularRows(SCHEMA, RecordRules({"INTERACTIONS": SCHEMA}), plan_columns(header, SCHEMA))


def test_columns_match_by_name_ignoring_case_and_underscores():
    assert plan_columns(["userId", "ITEM_ID", "timestamp", "event_type", "device"], SCHEMA) == {
        "USER_ID": 0, "ITEM_ID": 1, "TIMESTAMP": 2, "EVENT_TYPE": 3, "DEVICE": 4}


def test_configured_columns_win_over_names():
    plan = plan_columns(["customer", "ITEM_ID", "ts", "EVENT_TYPE"], SCHEMA,
                        {"USER_ID": "customer", "timestamp": "ts"})
    assert plan == {"USER_ID": 0, "ITEM_ID": 1, "TIMESTAMP": 2, "EVENT_TYPE": 3}


def test_a_mismatch_names_expected_found_missing_and_unknown_columns():
    with pytest.raises(ColumnsMismatch) as caught:
        plan_columns(["USER_ID", "ITEM_ID", "colour"], SCHEMA)
    message = str(caught.value)
    assert "expected USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE, DEVICE?, RATING?" in message
    assert "found USER_ID, ITEM_ID, colour" in message
    assert "missing TIMESTAMP, EVENT_TYPE" in message and "not in the schema: colour" in message


def test_rows_go_through_the_streaming_validation_and_the_one_timestamp_normaliser():
    rows = rows_of(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "DEVICE", "RATING"])
    results = list(rows.read([
        (2, ["u1", "i1", "2024-01-01T00:00:00Z", "view", "ios", "4"]),
        (3, ["u1", "i1", "1704067200000", "view", "", ""]),  # milliseconds become seconds
        (4, ["u1", "i1", "1704067200", "view", "", "4.5"]),  # RATING is an int
        (5, ["undefined", "i1", "1704067200", "view", "", ""]),
    ]))
    assert results[0][1] == ["u1", "i1", "1704067200", "view", "ios", "4"]
    assert results[1][1] == ["u1", "i1", "1704067200", "view", "", ""]
    assert isinstance(results[2][1], RejectedError) and results[2][1].reason == "schema_violation"
    assert "RATING" in results[2][1].message
    assert results[3][1].reason == "invalid_user_id"


def test_lines_that_are_not_utf8_are_reported_with_their_number():
    bad = []
    lines = Utf8Lines(iter([b"\xef\xbb\xbfa,b\n", b"caf\xe9\n", b"ok\n"]), lambda line, why: bad.append((line, why)))
    assert list(lines) == ["a,b\n", "ok\n"]
    assert bad == [(2, "not UTF-8: byte 0xe9 at column 4")]


def test_export_dialects_are_recognised():
    assert export_dialect({"type": "track", "event": "Product Viewed"}) == "segment"
    assert export_dialect({"events": [], "mpid": 1}) == "mparticle"
    assert export_dialect({"USER_ID": "u1"}) is None


def test_tally_counts_users_items_and_duplicates_on_disk(tmp_path):
    tally = Tally(tmp_path / "t", "INTERACTIONS", "FULL")
    rows = [("u1", "i1", "10", "view"), ("u1", "i2", "20", "view"), ("u2", "i1", "5", "buy"), ("u1", "i1", "10", "view")]
    for part in (rows[:1], rows[1:]):  # counted across batches, as the pass hands them on
        tally.add(table_of(part, ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"]))
    readiness = tally.readiness(rejected=2)
    tally.close()
    assert (readiness.rows, readiness.users, readiness.users_with_two, readiness.items, readiness.duplicates) == (
        4, 2, 1, 2, 1)
    assert readiness.event_types == {"view": 3, "buy": 1} and (readiness.first_secs, readiness.last_secs) == (5, 20)
    assert readiness.problems() == ["4 valid interactions; an import needs at least 1000",
                                    "1 users with at least 2 interactions; training needs 25"]
    assert not (tmp_path / "t").exists()


def _throttled() -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, "DescribeDataset")


def test_throttling_is_retried_with_backoff_and_other_errors_are_not():
    calls, slept = [], []

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) < 3:
            raise _throttled()
        return {"ok": True}

    policy = RetryPolicy(base_delay_secs=0.01, max_delay_secs=0.05, max_attempts=5, max_elapsed_secs=10)
    assert retrying(flaky, datasetArn="a", policy=policy, sleep=slept.append) == {"ok": True}
    assert len(calls) == 3 and len(slept) == 2

    def invalid(**kwargs):
        raise ClientError({"Error": {"Code": "InvalidInputException"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
                          "DescribeDataset")

    with pytest.raises(ClientError):
        retrying(invalid, policy=policy, sleep=slept.append)
    assert len(slept) == 2


def test_an_items_catalog_goes_through_finish_record():
    items = parse_schema(json.dumps({
        "type": "record", "name": "Items", "version": "1.0",
        "fields": [{"name": "ITEM_ID", "type": "string"},
                   {"name": "GENRES", "type": ["null", "string"], "categorical": True},
                   {"name": "PRICE", "type": "float"}]}))
    rows = TabularRows(items, RecordRules({"ITEMS": items}), plan_columns(["item_id", "genres", "price"], items))
    results = list(rows.read([(2, ["i1", "a|b", "9.5"]), (3, ["i2", "", ""]), (4, ["", "a", "1"])]))
    assert results[0][1] == ["i1", "a|b", "9.5"]
    assert results[1][1].reason == "schema_violation" and "PRICE" in results[1][1].message
    assert results[2][1].reason == "missing_item_id"


def test_an_mparticle_export_is_decoded_and_mapped_like_webhook_traffic():
    from connectors.destinations.personalize.mapping import Mapper
    from personalize_hub.imports.rows import ExportRows

    schema = parse_schema(json.dumps({
        "type": "record", "name": "Interactions", "version": "1.0",
        "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                   {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"}]}))
    batch = {"mpid": 42, "user_identities": {"customer_id": "c1"}, "events": [
        {"event_type": "commerce_event", "data": {
            "timestamp_unixtime_ms": 1704067200000, "event_id": 1,
            "product_action": {"action": "view_detail", "products": [{"id": "p1"}, {"id": "p2"}]}}}]}
    assert export_dialect(batch) == "mparticle"
    rows = ExportRows("mparticle", schema, Mapper(None, {"INTERACTIONS": schema}),
                      RecordRules({"INTERACTIONS": schema}))
    results = [row for _, row, _ in rows.read([(1, batch)])]
    assert results == [["c1", "p1", "1704067200", "view_detail"], ["c1", "p2", "1704067200", "view_detail"]]
