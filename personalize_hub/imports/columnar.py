"""The columnar pass of `hub import`: CSV blocks (pyarrow) and Parquet batches checked a column at a time.

The row path (`rows.TabularRows`) stays the one rule table and the one judge; this pass only proves rows
clean in bulk, applying the row path's own rules once per distinct value of a column instead of per row:

- ids (USER_ID, ITEM_ID): `schema.check_id`; at once for values of 1..MAX_ID_CHARS bytes holding a digit
  (no placeholder id has one, which an assertion below keeps true), once per distinct value for the rest;
- TIMESTAMP: plain epoch numbers (at most 15 digits, where `float()` is exact) get the unit rule of
  `hub.events.to_epoch_secs` (its own millisecond threshold) as one array operation, and the window is
  checked by `to_epoch_secs` itself on the batch's earliest and latest times (the window is an interval);
  any other text goes through `rows.timestamp_secs` (`to_epoch_secs`) once per distinct value;
- every other column (event type and value, impression, metadata): `TabularRows.settle` on a row it
  accepted, with only that cell swapped for each distinct value; that yields the value's verdict and its
  clean cell (the converted property), remembered across batches;
- what depends on several cells (the `properties` length, the 10 KB event) is bounded from above per row.

A row not proved clean (a cell failed, a bound was crossed, a CSV row with another number of values) is
settled by `TabularRows.settle` itself, so its reason, message and line are the row path's; a row with one
failed cell and the bounds kept takes the reason `settle` gave that value in the reference row. A vectorised
form that is too strict only sends good rows the slow way; tests/unit/personalize_hub/test_imports_columnar.py
runs both paths on the same generated inputs for the other direction.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from connectors.destinations.personalize.schema import (INTERACTIONS, MAX_ID_CHARS, MAX_IMPRESSION_IDS,
                                                        MAX_PROPERTIES_CHARS, check_id)
from connectors.destinations.personalize.validation import MAX_EVENT_BYTES
from hub.errors import RejectedError
from hub.events import MILLIS_THRESHOLD  # the unit rule's own threshold, not a copy
from hub.ids import PLACEHOLDER_IDS
from personalize_hub.imports.rows import Result, Row, TabularRows, numbered_rows, timestamp_secs
from personalize_hub.imports.source import SourceError, Utf8Lines, split_lines

BLOCK_BYTES = 1 << 20  # CSV bytes parsed at once: ~20k rows of interactions, a few MB of arrays
BATCH_ROWS = 131_072  # Parquet rows read at once
ROWS_PER_CHUNK = 20_000  # the row path's clean rows handed on at once
MEMO_ENTRIES = 50_000  # remembered verdicts per column (values of event type, value, metadata recur)
# An event's members besides the cells: at most 8 members (itemId … properties) at 64 bytes each, taken as 12 for
# headroom (an overestimate only sends a row to the row path), plus the 3 characters `_upper_bound_bytes` adds
# per impression id (at most MAX_IMPRESSION_IDS, schema.py cites the limit).
_EVENT_OVERHEAD_BYTES = 64 * 12
_IMPRESSION_OVERHEAD_CHARS = 3 * MAX_IMPRESSION_IDS
# The validation checks that weigh several cells together, which the bounds above stand for: a probe failing
# on one of them speaks of the reference row as much as of the value.
_WHOLE_ROW_REASONS = frozenset({"properties_too_long", "event_too_large"})

# The ids' shortcut below holds only while no placeholder id has a digit.
_DIGITS = "0123456789"
assert not any(ch in _DIGITS for placeholder in PLACEHOLDER_IDS for ch in placeholder)

Reject = tuple[int, "RejectedError | str", Any]  # (line, why: RejectedError or a not-UTF-8 message, raw input)


@dataclass
class Chunk:
    """Part of the pass: clean rows (the writer's columns, strings, in line order) and the rejects, by line."""

    clean: pa.Table
    rejects: list[Reject]


def table_of(rows: Sequence[Row], columns: Sequence[str]) -> pa.Table:
    """Row-path rows (lists of cells) as a table of string columns."""
    cells = list(zip(*rows)) if rows else [()] * len(columns)
    return pa.table([pa.array(c, pa.string()) for c in cells], names=list(columns))


def result_chunks(results: Iterable[Result], columns: Sequence[str], pending: list[Reject],
                  lines: Utf8Lines | None = None) -> Iterator[Chunk]:
    """Row-path results as chunks. `pending` also collects what is rejected beside them (not-UTF-8 lines)."""
    rows: list[Row] = []
    try:
        for line, row, raw in results:
            if type(row) is list:
                rows.append(row)
            else:
                pending.append((line, row, raw))
            if len(rows) >= ROWS_PER_CHUNK or len(pending) >= ROWS_PER_CHUNK:
                yield Chunk(table_of(rows, columns), sorted(pending, key=_line))
                rows, pending[:] = [], []
    except csv.Error as err:
        where = f"line {lines.line}: " if lines is not None else ""
        raise SourceError(f"{where}the CSV cannot be parsed any further: {err}") from None
    yield Chunk(table_of(rows, columns), sorted(pending, key=_line))
    pending[:] = []


def _line(reject: Reject) -> int:
    return reject[0]


class ColumnarRows:
    """Batches of input columns (strings, one per input column) → a Chunk, by the row path's rules."""

    def __init__(self, rows: TabularRows):
        self.rows = rows
        self.columns = rows.writer.columns
        self._at = rows.positions
        schema = rows.schema
        self._interactions = schema.dataset_type == INTERACTIONS
        self._ids = {"USER_ID", "ITEM_ID"} & set(self.columns)
        # `"key":` and the comma after the value, per metadata column: the row's properties JSON is at most
        # 2 + the sum of these and its values' JSON (one comma too many: an upper bound)
        self._key_chars = {f.name: len(orjson.dumps(f.key)) + 2 for f in schema.metadata if f.name in self._at}
        self._properties_limit = MAX_PROPERTIES_CHARS[schema.dataset_type]
        self._memo: dict[str, dict[str, tuple[bool, str, int]]] = {name: {} for name in self.columns}
        self._reference: list[str] | None = None
        self._errors: dict[tuple[str, str], RejectedError | None] = {}

    # -- one batch ------------------------------------------------------------------------------------------

    def settle(self, columns: Sequence[pa.Array], lines: np.ndarray,
               extra: Sequence[tuple[int, list[str]]] = ()) -> Chunk:
        """Rows given as columns (with their line numbers), plus `extra` rows the row path settles alone."""
        n = len(lines)
        ok = np.ones(n, dtype=bool)
        failed: list[tuple[str, np.ndarray]] = []  # per column, the rows whose cell failed its rule
        out: dict[str, pa.Array] = {}
        for name in self.columns:
            column = columns[self._at[name]]
            if name in self._ids:
                good = self._id_verdicts(column)
                out[name] = column
            elif name == "TIMESTAMP":
                good, out[name] = self._timestamps(column)
            else:
                continue
            ok &= good
            failed.append((name, ~good))
        probed = [name for name in self.columns if name not in out]
        reference = self._reference_row(columns, ok) if probed and ok.any() else None
        if probed and reference is None:  # no row the row path accepts to compare with: it settles the batch
            return self._with_row_path(pa.table({name: pa.array([], pa.string()) for name in self.columns}),
                                       lines[:0], [*extra, *self._rows_at(columns, lines, np.arange(n))])
        properties = np.full(n, 2, dtype=np.int64)
        for name in probed:
            good, out[name], chars = self._probe(name, columns[self._at[name]], reference)  # type: ignore[arg-type]
            ok &= good
            failed.append((name, ~good))
            if chars is not None:
                properties += chars
        within = np.ones(n, dtype=bool)
        if self._key_chars:
            within &= properties <= self._properties_limit
        if self._interactions:
            cells = sum(pc.binary_length(out[name]).to_numpy(zero_copy_only=False).astype(np.int64)
                        for name in self.columns)  # bytes: at least the characters the bound counts
            within &= 6 * (cells + properties + _IMPRESSION_OVERHEAD_CHARS) + _EVENT_OVERHEAD_BYTES <= MAX_EVENT_BYTES
        ok &= within
        clean = pa.table([out[name] for name in self.columns], names=list(self.columns)).filter(pa.array(ok))
        doubtful = np.flatnonzero(~ok)
        if not doubtful.size:
            return self._with_row_path(clean, lines[ok], extra)
        rows = self._rows_at(columns, lines, doubtful)
        rejects: list[Reject] = []
        if reference is not None:
            # A row with one failed cell (the others each proved, the bounds kept) fails the row path on that
            # cell alone: its reason is the one the row path gave that value in the accepted reference row.
            failing = np.stack([bad[doubtful] for _, bad in failed])
            alone = (failing.sum(axis=0) == 1) & within[doubtful]
            for k in np.flatnonzero(alone):
                name = failed[int(failing[:, k].argmax())][0]
                line, cells = rows[k]
                err = self._error(name, cells[self._at[name]], reference)
                if err is not None and err.reason not in _WHOLE_ROW_REASONS:
                    rejects.append((line, err, cells))
                    rows[k] = (line, [])  # settled: the row path skips it
        return self._with_row_path(clean, lines[ok], [*extra, *rows], rejects)

    def _error(self, name: str, value: str, reference: list[str]) -> RejectedError | None:
        """What the row path says of `value` in column `name` of the reference row (None if it accepts it)."""
        key = (name, value)
        if key not in self._errors:
            probe = reference.copy()
            probe[self._at[name]] = value
            row = self.rows.settle(probe)
            if len(self._errors) >= MEMO_ENTRIES:
                self._errors.clear()
            self._errors[key] = None if type(row) is list else row
        return self._errors[key]

    @staticmethod
    def _rows_at(columns: Sequence[pa.Array], lines: np.ndarray, at: np.ndarray) -> list[tuple[int, list[str]]]:
        """(line, cells) of the rows at the given positions, for the row path."""
        by_column = [column.take(pa.array(at)).to_pylist() for column in columns]
        return [(int(lines[i]), [c[k] for c in by_column]) for k, i in enumerate(at)]

    def _with_row_path(self, clean: pa.Table, lines: np.ndarray, extra: Sequence[tuple[int, list[str]]],
                       rejects: list[Reject] | None = None) -> Chunk:
        rejects = rejects or []
        rows: list[Row] = []
        row_lines: list[int] = []
        for line, cells in extra:
            if not cells:  # a blank line: the row path skips it too
                continue
            row = self.rows.settle(cells)
            if type(row) is list:
                rows.append(row)
                row_lines.append(line)
            else:
                rejects.append((line, row, cells))
        if rows:  # rows the row path accepted go back to their place among the others
            clean = pa.concat_tables([clean, table_of(rows, self.columns)])
            order = np.argsort(np.concatenate([lines, np.asarray(row_lines, dtype=lines.dtype)]), kind="stable")
            clean = clean.take(pa.array(order))
        return Chunk(clean, sorted(rejects, key=_line))

    # -- the rules, once per distinct value -------------------------------------------------------------------

    def _id_verdicts(self, column: pa.Array) -> np.ndarray:
        """`check_id` for every value: at once for those of 1..MAX_ID_CHARS characters with a digit (no placeholder
        has one, and `is_placeholder_id`'s strip and lower keep digits), once per distinct value for the rest."""
        size = pc.binary_length(column)  # bytes: at least the characters check_id counts
        sized = pc.and_(pc.greater_equal(size, 1), pc.less_equal(size, MAX_ID_CHARS))
        # a digit at either end (user-42, 42-abc) shows without a regex; the others are searched for one
        ends = pc.less(pc.binary_length(pc.utf8_trim(column, _DIGITS)), size)
        proved = pc.and_(sized, ends).to_numpy(zero_copy_only=False)
        if proved.all():
            return proved
        rest = np.flatnonzero(~proved)
        found = pc.and_(pc.take(sized, rest), pc.match_substring_regex(column.take(pa.array(rest)), "[0-9]"))
        proved[rest] = found.to_numpy(zero_copy_only=False)
        if proved.all():
            return proved
        rest = np.flatnonzero(~proved)
        encoded = column.take(pa.array(rest)).dictionary_encode()
        verdicts = np.fromiter((_is_id(v) for v in encoded.dictionary.to_pylist()), dtype=bool,
                               count=len(encoded.dictionary))
        proved[rest] = verdicts[encoded.indices.to_numpy(zero_copy_only=False)]
        return proved

    def _timestamps(self, column: pa.Array) -> tuple[np.ndarray, pa.Array]:
        plain = pc.and_(pc.ascii_is_decimal(column), pc.less_equal(pc.binary_length(column), 15))
        good = plain.to_numpy(zero_copy_only=False).copy()
        numbers = pc.cast(column if good.all() else pc.if_else(plain, column, "0"), pa.int64()).to_numpy()
        millis = numbers >= MILLIS_THRESHOLD
        seconds = np.where(millis, numbers / 1000.0, numbers)  # as to_epoch_secs computes it
        whole = np.where(millis, numbers // 1000, numbers)  # int() of that: exact below 2**53
        if good.any():
            chosen = np.flatnonzero(good)
            earliest, latest = chosen[np.argmin(seconds[chosen])], chosen[np.argmax(seconds[chosen])]
            if not (self._timestamp(column[earliest].as_py())[0] and self._timestamp(column[latest].as_py())[0]):
                good[:] = False  # some lie outside the window: each value is judged alone below
        cells = pa.array(whole).cast(pa.string())
        slow = np.flatnonzero(~good)
        if slow.size:
            judged = [self._timestamp(text) for text in column.take(pa.array(slow)).to_pylist()]
            good[slow] = [verdict for verdict, _ in judged]
            mask = np.zeros(len(good), dtype=bool)
            mask[slow] = True
            cells = pc.replace_with_mask(cells, pa.array(mask), pa.array([text for _, text in judged], pa.string()))
        return good, cells

    def _timestamp(self, text: str) -> tuple[bool, str]:
        memo = self._memo["TIMESTAMP"]
        known = memo.get(text)
        if known is None:
            try:
                known = (True, str(int(timestamp_secs(text))), 0)
            except RejectedError:
                known = (False, "", 0)
            _remember(memo, text, known)
        return known[0], known[1]

    def _reference_row(self, columns: Sequence[pa.Array], ok: np.ndarray) -> list[str] | None:
        """A row the row path accepts, to swap one cell at a time; kept while it serves."""
        if self._reference is None:
            for index in np.flatnonzero(ok)[:32]:
                cells = [column[int(index)].as_py() for column in columns]
                if type(self.rows.settle(cells)) is list:
                    self._reference = cells
                    break
        return self._reference

    def _probe(self, name: str, column: pa.Array, reference: list[str]) -> tuple[np.ndarray, pa.Array,
                                                                                 np.ndarray | None]:
        """Each distinct value of one column through the row path in a row it accepted: verdicts, clean cells and,
        for a metadata column, the characters it adds to the properties JSON."""
        encoded = column.dictionary_encode()
        values = encoded.dictionary.to_pylist()
        memo, at, out_at = self._memo[name], self._at[name], self.rows.writer.position[name]
        key_chars = self._key_chars.get(name)
        verdicts = np.empty(len(values), dtype=bool)
        chars = np.zeros(len(values), dtype=np.int64)
        cells: list[str] = []
        for k, value in enumerate(values):
            known = memo.get(value)
            if known is None:
                probe = reference.copy()
                probe[at] = value
                row = self.rows.settle(probe)
                if type(row) is not list:
                    known = (False, "", 0)
                else:
                    cell = row[out_at]
                    added = 0 if key_chars is None or value == "" else key_chars + len(orjson.dumps(cell).decode())
                    known = (True, cell, added)
                _remember(memo, value, known)
            verdicts[k], cell, chars[k] = known
            cells.append(cell)
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        clean = pa.array(cells, pa.string()).take(encoded.indices)
        return verdicts[indices], clean, (chars[indices] if key_chars is not None else None)

    # -- CSV --------------------------------------------------------------------------------------------------

    def csv_chunks(self, blocks: Iterator[bytes], width: int, first_line: int) -> Iterator[Chunk]:
        """Blocks of whole CSV lines after the header (`width` values a row) → chunks.

        A block is parsed by pyarrow when each of its rows is one line (so line numbers follow from the count);
        a block with a blank line, bytes that are not UTF-8 or a value spanning lines is read by the row path, and
        when a quoted value runs past the block's end, the rest of the file is.
        """
        line = first_line
        for block in blocks:
            count = block.count(b"\n")
            chunk = self._csv_block(block, width, line, count)
            if chunk is None:
                if block.count(b'"') % 2:
                    yield from self.row_path(chain([block], blocks), line)
                    return
                chunk = next(self.row_path([block], line))
            yield chunk
            line += count

    def _csv_block(self, block: bytes, width: int, first_line: int, count: int) -> Chunk | None:
        if not block.isascii():
            try:
                block.decode("utf-8")  # pyarrow would fail the whole block, or hand a bad row over undecodable
            except UnicodeDecodeError:
                return None
        names = [f"c{i}" for i in range(width)]
        invalid: list[tuple[int, str]] = []

        def on_invalid(row: Any) -> str:
            invalid.append((row.number, row.text))
            return "skip"

        def parse(threads: bool) -> pa.Table:
            return pa_csv.read_csv(
                pa.BufferReader(block),
                read_options=pa_csv.ReadOptions(column_names=names, use_threads=threads, block_size=1 << 18),
                # without a quote no value can hold a line break, and pyarrow parses faster knowing it
                parse_options=pa_csv.ParseOptions(newlines_in_values=b'"' in block, ignore_empty_lines=False,
                                                  invalid_row_handler=on_invalid),
                convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                      strings_can_be_null=False, quoted_strings_can_be_null=False))

        try:
            table = parse(threads=True)
            if any(number is None for number, _ in invalid):  # threads do not number rows: again, in one
                invalid.clear()
                table = parse(threads=False)
        except pa.ArrowInvalid:
            return None  # a value pyarrow cannot parse: the row path reads the block
        if table.num_rows + len(invalid) != count or (table.num_rows and _has_empty_row(table)):
            return None  # a value spanning lines, or a blank line (or one of empty values): the row path reads it
        lines = np.arange(first_line, first_line + count, dtype=np.int64)
        extra = []
        if invalid:
            taken = np.zeros(count, dtype=bool)
            for number, text in invalid:
                taken[number - 1] = True
                extra.append((first_line + number - 1, next(csv.reader([text]), [])))
            lines = lines[~taken]
        return self.settle([table.column(i).combine_chunks() for i in range(width)], lines, extra)

    def row_path(self, blocks: Iterable[bytes], first_line: int) -> Iterator[Chunk]:
        """CSV lines (after the header) through the row path, numbered from `first_line`."""
        pending: list[Reject] = []
        lines = Utf8Lines((line for block in blocks for line in split_lines(block)),
                          lambda number, why: pending.append((number, why, None)), first_line)
        yield from result_chunks(self.rows.read(numbered_rows(lines)), self.columns, pending, lines)

    # -- Parquet ----------------------------------------------------------------------------------------------

    def parquet_chunks(self, batches: Iterable[pa.RecordBatch]) -> Iterator[Chunk]:
        """Record batches → chunks; a row's "line" is its number in the file (1-based)."""
        line = 1
        for batch in batches:
            columns = [cells_of(batch.column(i)) for i in range(batch.num_columns)]
            yield self.settle(columns, np.arange(line, line + batch.num_rows, dtype=np.int64))
            line += batch.num_rows


def cells_of(column: pa.Array) -> pa.Array:
    """A typed Parquet column as the text cells a CSV would hold (as flat JSON lines' values are read): null
    as "", lists joined with `|`, times as epoch seconds, anything nested as its JSON."""
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        column = column.cast(pa.timestamp("s", getattr(kind, "tz", None)), safe=False).cast(pa.int64())
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        try:
            column = pc.binary_join(column.cast(pa.list_(pa.string())), "|")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _as_json(column)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        try:
            column = column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _as_json(column)
    return pc.fill_null(column.cast(pa.string()), "")


def _as_json(column: pa.Array) -> pa.Array:
    return pa.array(["" if v is None else orjson.dumps(v, default=str).decode() for v in column.to_pylist()],
                    pa.string())


def _is_id(value: str) -> bool:
    try:
        check_id(value or None, "id", "id")
        return True
    except RejectedError:
        return False


def _remember(memo: dict[str, tuple[bool, str, int]], value: str, known: tuple[bool, str, int]) -> None:
    if len(memo) >= MEMO_ENTRIES:
        memo.clear()
    memo[value] = known


def _has_empty_row(table: pa.Table) -> bool:
    """Whether a row has every value empty: pyarrow reads a blank line so, where the row path skips it."""
    empty = pc.equal(pc.binary_length(table.column(0)), 0)
    for column in table.columns[1:]:
        empty = pc.and_(empty, pc.equal(pc.binary_length(column), 0))
    return bool(pc.any(empty).as_py())
