"""The columnar pass of `hub import` against the row path on the same inputs: same clean rows, same rejects.

The row path (`TabularRows.read` over `csv.reader`) is the reference; the columnar pass (pyarrow blocks, rules
once per distinct value) must give the same clean cells in the same order and the same (line, reason,
message) for every reject, whatever the cells, the row shapes, quoting, blank lines or bytes that are not UTF-8.
"""

from __future__ import annotations

import csv
import io
import json
from itertools import chain

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.destinations.personalize.schema import parse_schema
from connectors.destinations.personalize.validation import RecordRules
from hub.errors import RejectedError
from personalize_hub.imports.columnar import ColumnarRows
from personalize_hub.imports.rows import TabularRows, csv_rows, plan_columns
from personalize_hub.imports.source import Utf8Lines, line_blocks, split_lines

SCHEMA = parse_schema(json.dumps({
    "type": "record", "name": "Interactions", "version": "1.0",
    "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
               {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
               {"name": "EVENT_VALUE", "type": ["null", "float"]},
               {"name": "DEVICE", "type": ["null", "string"], "categorical": True},
               {"name": "RATING", "type": ["null", "int"]}]}))
HEADER = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "DEVICE", "RATING"]

# Per column: values the row path accepts, then values it may refuse or that stress the parsing.
GOOD = [["u1", "user-2", "abc", "é-1", "x" * 256, "a,b"], ["i1", "item-2", "abc", "é-1"],
        ["1700000000", "1700000000123", "2024-01-01T00:00:00Z", " 1700000000 ", "1.7e9", "0000001700000000"],
        ["view", "click", "buy,now"], ["1.5", "", "5", "-0", " 2 "], ["ios", "", "a|b", "é", "d" * 1000], ["4", "", "-1"]]
ODD = ["null", " NULL ", "undefined", "", " ", "y" * 257, "nan", "Nil", 'q"1', "line\nbreak", "yesterday", "100",
       "99999999999999", "1234567890123456789", "-5", "+1700000000", "١٧٠٠٠٠٠٠٠٠", "t" * 257, "lots", "inf",
       "1e400", "d" * 1001, "4.5", "3000000000", "x" * 1000, "2024-01-01"]


@st.composite
def row(draw) -> list[str]:
    """Mostly rows the row path accepts (so that blocks are proved in bulk), some with one or two odd cells."""
    cells = [draw(st.sampled_from(column)) for column in GOOD]
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
        cells[draw(st.integers(0, len(cells) - 1))] = draw(st.sampled_from(ODD))
    return cells


line = st.one_of(row().map(lambda cells: ("row", cells)), row().map(lambda cells: ("row", cells)),
                 st.lists(st.sampled_from(GOOD[0]), max_size=9).map(lambda cells: ("row", cells)),  # other widths
                 st.just(("bytes", b"u9,caf\xe9,1700000000,view\n")))


def encode(lines: list[tuple[str, object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    data = out.getvalue().encode()
    for kind, value in lines:
        if kind == "bytes":
            data += value  # type: ignore[operator]
        else:
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerow(value)
            data += out.getvalue().encode()
    return data


def reader() -> TabularRows:
    return TabularRows(SCHEMA, RecordRules({"INTERACTIONS": SCHEMA}), plan_columns(HEADER, SCHEMA))


def outcome(err: RejectedError | str) -> tuple[str, str]:
    return (err.reason, err.message) if isinstance(err, RejectedError) else ("invalid_utf8", err)


def row_path(data: bytes) -> tuple[list[list[str]], list[tuple[int, str, str]]]:
    bad: list[tuple[int, str, str]] = []
    lines = Utf8Lines(split_lines(data), lambda number, why: bad.append((number, "invalid_utf8", why)))
    _, cells = csv_rows(lines)
    clean = []
    for number, result, _ in reader().read(cells):
        if type(result) is list:
            clean.append(result)
        else:
            bad.append((number, *outcome(result)))
    return clean, sorted(bad)


def columnar(data: bytes, block_bytes: int) -> tuple[list[list[str]], list[tuple[int, str, str]]]:
    first = data.index(b"\n") + 1
    blocks = line_blocks(iter([data[first:]]), block_bytes)
    clean, bad = [], []
    for chunk in ColumnarRows(reader()).csv_chunks(blocks, len(HEADER), 2):
        clean += [list(r) for r in zip(*chunk.clean.to_pydict().values())] if chunk.clean.num_rows else []
        bad += [(number, *outcome(err)) for number, err, _ in chunk.rejects]
    return clean, sorted(bad)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line, min_size=1, max_size=60), st.sampled_from([1, 300, 2000, 1 << 20]))
def test_the_columnar_pass_and_the_row_path_agree(lines, block_bytes):
    data = encode(lines)
    assert columnar(data, block_bytes) == row_path(data)


def test_a_block_of_clean_repeats_is_proved_in_bulk_and_agrees(monkeypatch):
    def no_row_path(*args):
        raise AssertionError("the block went the row path's way")

    monkeypatch.setattr(ColumnarRows, "row_path", no_row_path)  # in bulk: pyarrow parsed the block
    good = [["u1", f"item-{n % 7}", str(1_700_000_000 + n), "view", "1.5", "ios", "4"] for n in range(3000)]
    bad = [["u2", "", "1700000000", "view", "", "", ""], ["u3", "i1", "yesterday", "view", "", "", ""]]
    data = encode([("row", cells) for cells in chain(good[:1500], bad, good[1500:])])
    clean, rejects = columnar(data, 1 << 20)
    assert (clean, rejects) == row_path(data)
    assert len(clean) == 3000 and [(n, reason) for n, reason, _ in rejects] == [
        (1502, "missing_item_id"), (1503, "invalid_timestamp")]


def test_parquet_typed_columns_are_read_as_their_text_and_bad_rows_rejected(tmp_path):
    table = pa.table({
        "user_id": ["u1", "u2", None, "u4", "u5"],
        "item_id": ["i1", "i2", "i3", "", "i5"],
        "timestamp": pa.array([1_700_000_000_000, 1_700_000_001_000, 1_700_000_002_000, 1_700_000_003_000,
                               1_700_000_004_000], pa.timestamp("ms")),
        "event_type": ["view", "click", "view", "view", "null"],
        "event_value": [1.5, None, 2.0, 1.0, 1.0],
        "device": [["a", "b"], None, ["ios"], ["ios"], ["web"]],
        "rating": pa.array([4, None, 3, 2, 1], pa.int64()),
    })
    path = tmp_path / "history.parquet"
    pq.write_table(table, path, row_group_size=2)
    parquet = pq.ParquetFile(path)
    rows = ColumnarRows(TabularRows(SCHEMA, RecordRules({"INTERACTIONS": SCHEMA}),
                                    plan_columns(parquet.schema_arrow.names, SCHEMA)))
    chunks = list(rows.parquet_chunks(parquet.iter_batches(batch_size=2)))
    clean = [row for chunk in chunks for row in zip(*chunk.clean.to_pydict().values())]
    rejects = [(line, err.reason) for chunk in chunks for line, err, _ in chunk.rejects]
    assert clean == [("u1", "i1", "1700000000", "view", "1.5", "a|b", "4"),
                     ("u2", "i2", "1700000001", "click", "", "", "")]
    assert rejects == [(3, "missing_user_id"), (4, "missing_item_id"), (5, "missing_event_type")]


def test_an_items_catalog_over_the_properties_limit_is_refused_as_the_row_path_refuses_it():
    items = parse_schema(json.dumps({
        "type": "record", "name": "Items", "version": "1.0",
        "fields": [{"name": "ITEM_ID", "type": "string"},
                   {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True},
                   {"name": "SUMMARY", "type": ["null", "string"], "textual": True}]}))
    header = ["ITEM_ID", "DESCRIPTION", "SUMMARY"]
    sizes = [0, 100, 15_000, 17_000, 20_000, 20_001]
    rows = [[f"i{n}", "d" * a, "s" * b] for n, (a, b) in enumerate((a, b) for a in sizes for b in sizes)]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    data = out.getvalue().encode()

    def tabular() -> TabularRows:
        return TabularRows(items, RecordRules({"ITEMS": items}), plan_columns(header, items))

    expected = [(n + 2, r if type(r) is list else r.reason) for n, r in enumerate(map(tabular().settle, rows))]
    got = []
    for chunk in ColumnarRows(tabular()).csv_chunks(iter([data[data.index(b"\n") + 1:]]), 3, 2):
        got += [(line, err.reason) for line, err, _ in chunk.rejects]
        got += [(None, list(r)) for r in zip(*chunk.clean.to_pydict().values())]
    assert sorted(r for _, r in got if _ is None) == sorted(r for _, r in expected if type(r) is list)
    assert [g for g in got if g[0] is not None] == [e for e in expected if type(e[1]) is str]
    assert {"properties_too_long", "value_too_long"} <= {reason for _, reason in expected if type(reason) is str}
