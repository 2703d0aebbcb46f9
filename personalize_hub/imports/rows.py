"""Input rows → clean dataset rows, through the Personalize encoder's own mapping and record rules.

CSV and flat JSON lines are matched to the schema once (`plan_columns`: one error naming expected and found
columns), then every row becomes the record the streaming path would build and goes through
`RecordRules.finish_interaction` / `finish_record`, timestamps through `hub.events.to_epoch_secs`.
Segment and mParticle exports (JSON lines of messages or batches) go through their decoders and the
`Mapper` exactly as webhook traffic does. A bad row is yielded as a rejection; it stops nothing.
"""

from __future__ import annotations

import csv
from operator import itemgetter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

import orjson

from connectors.destinations.personalize.mapping import Mapper
from connectors.destinations.personalize.schema import INTERACTIONS, ITEMS, USERS, DatasetSchema, check_id, fold_key
from connectors.destinations.personalize.unit import PersonalizeRecord
from connectors.destinations.personalize.validation import RecordRules
from connectors.formats import mparticle, segment
from hub.errors import RejectedError
from hub.events import EventKind, Rejection, SourceRef, to_epoch_secs
from personalize_hub.imports.source import SourceError

# What the hub needs of each dataset type: Personalize's required fields, plus EVENT_TYPE, which the
# streaming validation requires of every interaction (an interaction without a type trains nothing useful).
REQUIRED_COLUMNS = {INTERACTIONS: ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"), ITEMS: ("ITEM_ID",),
                    USERS: ("USER_ID",)}
_KIND_OF = {INTERACTIONS: EventKind.INTERACTION, ITEMS: EventKind.ITEM, USERS: EventKind.USER}
_ID_KEY = {ITEMS: "itemId", USERS: "userId"}

Row = list[str]
Result = tuple[int, Row | RejectedError, Any]  # (line, clean row or why not, the raw input for the rejects file)
Finished = tuple[str | None, dict[str, Any]]  # (user id, record finished by the record rules)


class ColumnsMismatch(SourceError):
    """Input columns that do not fit the dataset schema: names the expected and the found columns."""


def plan_columns(header: list[str], schema: DatasetSchema, columns: Mapping[str, str] | None = None,
                 ignore: Collection[str] = ()) -> dict[str, int]:
    """Schema field name → index of the input column that fills it; ColumnsMismatch when they do not fit.

    A column matches a field through `columns` (field → column) or by name, ignoring case and `_` as
    Personalize itself matches names (`userId`, `user_id` and `USER_ID` are one field).
    """
    fields = {fold_key(f.name): f.name for f in schema.fields}
    configured: dict[str, str] = {}
    for field_name, column in (columns or {}).items():
        if fold_key(field_name) not in fields:
            raise ColumnsMismatch(f"imports.columns: {field_name!r} is not a field of the dataset schema "
                                  f"({', '.join(f.name for f in schema.fields)})")
        configured[fold_key(column)] = fields[fold_key(field_name)]
    mapped_elsewhere = set(configured.values())  # a field taken from a configured column is not also matched by name
    ignored = {fold_key(name) for name in ignore}
    positions: dict[str, int] = {}
    unknown = []
    for index, name in enumerate(header):
        key = fold_key(name.strip())
        if key in ignored:
            continue
        field_name = configured.get(key)
        if field_name is None and fields.get(key) not in mapped_elsewhere:
            field_name = fields.get(key)
        if field_name is None or field_name in positions:
            unknown.append(name)
            continue
        positions[field_name] = index
    required = [*REQUIRED_COLUMNS[schema.dataset_type],
                *(f.name for f in schema.fields if not f.nullable and f.name not in REQUIRED_COLUMNS[schema.dataset_type])]
    missing = [name for name in required if name in fields.values() and name not in positions]
    if missing or unknown:
        expected = ", ".join(f.name + ("" if f.name in required else "?") for f in schema.fields)
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"not in the schema: {', '.join(unknown)}"] if unknown else [])
        raise ColumnsMismatch(f"the columns do not fit the {schema.dataset_type.title()} schema: expected {expected} "
                              f"(? = optional); found {', '.join(header) or 'no columns'}; {'; '.join(problems)}")
    return positions


class RowWriter:
    """The output side: which schema columns the clean CSV has, and one finished record → its cells."""

    def __init__(self, schema: DatasetSchema, present: Collection[str]):
        self.columns = tuple(f.name for f in schema.fields if f.name in present)
        self._cells = [_extractor(schema, name) for name in self.columns]
        self.position = {name: index for index, name in enumerate(self.columns)}

    def row(self, user_id: str | None, record: dict[str, Any]) -> Row:
        text = record.get("properties")
        properties = orjson.loads(text) if text else {}
        return [cell(user_id, record, properties) for cell in self._cells]


def _extractor(schema: DatasetSchema, name: str) -> Callable[[str | None, dict[str, Any], dict[str, str]], str]:
    if name == "USER_ID":
        return (lambda user, r, p: user) if schema.dataset_type == INTERACTIONS else (lambda user, r, p: r["userId"])
    simple = {"ITEM_ID": "itemId", "EVENT_TYPE": "eventType", "RECOMMENDATION_ID": "recommendationId"}
    if name in simple:
        member = simple[name]
        return lambda user, r, p: r.get(member) or ""
    # Personalize's bulk format: epoch seconds as a long (docs/reference/personalize-api.md#dataset-schemas)
    if name == "TIMESTAMP":
        return lambda user, r, p: str(int(r["sentAt"]))
    if name == "EVENT_VALUE":
        return lambda user, r, p: "" if (v := r.get("eventValue")) is None else repr(v)
    if name == "IMPRESSION":
        return lambda user, r, p: "|".join(r.get("impression") or ())
    if name == "EVENT_ATTRIBUTION_SOURCE":
        return lambda user, r, p: (r.get("metricAttribution") or {}).get("eventAttributionSource", "")
    key = schema.field(name).key  # type: ignore[union-attr]
    return lambda user, r, p: p.get(key, "")


class TabularRows:
    """CSV or flat JSON rows: cells → the record the streaming mapping would build → validation → a clean row.

    History repeats itself: the same item, event type, value and metadata recur with other users and times.
    What validation makes of a row depends on those cells alone once the user id and timestamp are checked
    (`finish_interaction` only range-checks `sentAt`, which `to_epoch_secs` already guarantees), so a
    bounded memo of finished rows keyed by the other cells saves the repeats' validation without changing
    any outcome. Memory stays flat: two generations of MEMO_ENTRIES, the older dropped when the younger fills.
    """

    MEMO_ENTRIES = 20_000  # per generation, ~12 MB of finished rows; users known good are kept as many

    def __init__(self, schema: DatasetSchema, validation: RecordRules, positions: dict[str, int]):
        self.schema = schema
        self.writer = RowWriter(schema, positions)
        self.width = max(positions.values()) + 1
        self.positions = positions
        self._metadata = [(f.key, positions[f.name]) for f in schema.metadata if f.name in positions]
        self._validation = validation
        self._users: set[str] = set()
        if schema.dataset_type == INTERACTIONS:
            others = [i for name, i in sorted(positions.items(), key=lambda kv: kv[1])
                      if name not in ("USER_ID", "TIMESTAMP")]
            self._key = itemgetter(*others) if len(others) > 1 else (lambda cells, i=others[0]: (cells[i],))
        else:
            self._key = None

    def finish(self, cells: list[str]) -> Finished:
        """One row's cells → (user id, finished record); RejectedError naming the field when it is bad."""
        if len(cells) < self.width:
            raise RejectedError("wrong_column_count", f"expected {self.width} values, found {len(cells)}")
        at = self.positions
        properties = {key: cells[i] for key, i in self._metadata if cells[i] != ""}
        if self.schema.dataset_type != INTERACTIONS:
            id_field = "ITEM_ID" if self.schema.dataset_type == ITEMS else "USER_ID"
            record = {_ID_KEY[self.schema.dataset_type]: cells[at[id_field]] or None, "properties": properties}
            return None, self._validation.finish_record(self.schema.dataset_type, record)
        user = cells[at["USER_ID"]] or None
        check_id(user, "USER_ID", "user_id")
        record: dict[str, Any] = {"itemId": cells[at["ITEM_ID"]] or None, "eventType": cells[at["EVENT_TYPE"]] or None,
                                  "sentAt": timestamp_secs(cells[at["TIMESTAMP"]])}
        if (i := at.get("EVENT_VALUE")) is not None and cells[i] != "":
            record["eventValue"] = _number(cells[i])
        if (i := at.get("IMPRESSION")) is not None and cells[i] != "":
            record["impression"] = cells[i].split("|")
        if (i := at.get("RECOMMENDATION_ID")) is not None and cells[i] != "":
            record["recommendationId"] = cells[i]
        if (i := at.get("EVENT_ATTRIBUTION_SOURCE")) is not None and cells[i] != "":
            record["metricAttribution"] = {"eventAttributionSource": cells[i]}
        if properties:
            record["properties"] = properties
        return user, self._validation.finish_interaction(record)

    def settle(self, cells: list[str]) -> Row | RejectedError:
        """One row's clean cells, or why not: the row path's verdict, which the columnar pass defers to."""
        try:
            return self.writer.row(*self.finish(cells))
        except RejectedError as err:
            # kept as a value: without its traceback, whose frames would hold the batch's arrays in a cycle
            err.__traceback__ = err.__context__ = None
            return err

    def read(self, rows: Iterable[tuple[int, list[str]]]) -> Iterator[Result]:
        if self._key is None:
            for line, cells in rows:
                row = self.settle(cells)
                yield line, row, None if type(row) is list else cells
            return
        yield from self._read_interactions(rows)

    def _read_interactions(self, rows: Iterable[tuple[int, list[str]]]) -> Iterator[Result]:
        users, key_of, width = self._users, self._key, self.width
        young: dict[tuple[str, ...], Row] = {}
        old: dict[tuple[str, ...], Row] = {}
        user_in, time_in = self.positions["USER_ID"], self.positions["TIMESTAMP"]
        user_out, time_out = self.writer.position["USER_ID"], self.writer.position["TIMESTAMP"]
        for line, cells in rows:
            try:
                key = key_of(cells) if len(cells) >= width else None
                template = young.get(key)
                if template is None and (template := old.get(key)) is not None:
                    young[key] = template  # still in use: survives the next generation change
                if template is None:
                    user, record = self.finish(cells)
                    row = self.writer.row(user, record)
                    if len(young) >= self.MEMO_ENTRIES:  # two generations: an approximate LRU, flat in memory
                        old, young = young, {}
                    if key is not None:
                        young[key] = row
                    yield line, row, None
                    continue
                user = cells[user_in]
                if user not in users:
                    check_id(user or None, "USER_ID", "user_id")
                    if len(users) >= self.MEMO_ENTRIES:
                        users.clear()
                    users.add(user)
                row = template.copy()
                row[user_out] = user
                row[time_out] = str(int(timestamp_secs(cells[time_in])))
                yield line, row, None
            except RejectedError as err:
                yield line, err, cells


def timestamp_secs(text: str) -> float:
    """A TIMESTAMP cell through the one normaliser (`hub.events.to_epoch_secs`), or RejectedError."""
    if text == "":
        raise RejectedError("missing_timestamp", "TIMESTAMP: required")
    try:
        return to_epoch_secs(text)
    except ValueError as err:
        raise RejectedError("invalid_timestamp", f"TIMESTAMP: {err}") from None


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # the record rules reject it, naming the field


def csv_rows(lines: Any) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """(header, numbered rows) of CSV text lines; `lines.line` is the line each row ends on."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise SourceError("the input is empty: a CSV needs a header row naming its columns")
    return header, numbered_rows(lines, reader)


def numbered_rows(lines: Any, reader: Iterator[list[str]] | None = None) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of CSV text lines (or of a reader over them), blank lines skipped."""
    for cells in csv.reader(lines) if reader is None else reader:
        if cells:
            yield lines.line, cells


def json_objects(lines: Any, on_bad: Callable[[int, RejectedError, str], None]) -> Iterator[tuple[int, Any]]:
    """Numbered JSON values of JSON lines text; a line that is not JSON goes to `on_bad`."""
    for text in lines:
        if not text.strip():
            continue
        try:
            yield lines.line, orjson.loads(text)
        except orjson.JSONDecodeError as err:
            on_bad(lines.line, RejectedError("invalid_json", f"not JSON: {err}"), text[:1000])


def export_dialect(first: Any) -> str | None:
    """"segment", "mparticle" or None (flat rows) for the first object of a JSON lines file."""
    if isinstance(first, dict):
        if isinstance(first.get("events"), list) and ("mpid" in first or "user_identities" in first):
            return "mparticle"
        if first.get("type") in segment.CALLS and ("messageId" in first or "event" in first or "traits" in first):
            return "segment"
    return None


def flat_cells(value: Any, names: list[str]) -> list[str]:
    """A flat JSON object as CSV-like cells in `names` order (numbers and booleans as their text)."""
    if not isinstance(value, dict):
        raise RejectedError("invalid_type", f"expected a JSON object, got {type(value).__name__}")
    return [_text(value.get(name)) for name in names]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "|".join(_text(v) for v in value)
    if isinstance(value, (int, float)):
        return str(value)
    return orjson.dumps(value).decode()  # a nested object: the record rules say it is not allowed


class ExportRows:
    """Segment or mParticle export lines through their decoders and the streaming `Mapper`."""

    def __init__(self, dialect: str, schema: DatasetSchema, mapping: Mapper, validation: RecordRules):
        self.dialect = dialect
        self.schema = schema
        self.writer = RowWriter(schema, {f.name for f in schema.fields})
        self._mapping = mapping
        self._validation = validation
        self._kind = _KIND_OF[schema.dataset_type]

    def read(self, objects: Iterable[tuple[int, Any]]) -> Iterator[Result]:
        for line, value in objects:
            for outcome in self._results(value):
                if isinstance(outcome, Rejection):
                    yield line, RejectedError(outcome.reason, outcome.message), value
                    continue
                try:
                    user, record = self._finish(outcome)
                    yield line, self.writer.row(user, record), None
                except RejectedError as err:
                    yield line, err, value

    def _results(self, value: Any) -> Iterator[PersonalizeRecord | Rejection]:
        try:
            if self.dialect == "segment":
                event = segment.decode_message(value, source_id="import")
                events, rejections = ([event] if event else []), []
            else:
                events, indexed = mparticle.decode_batch(value, source_id="import")
                rejections = [rejection for _, rejection in indexed]
        except RejectedError as err:
            yield Rejection(source=_IMPORT_SOURCE, reason=err.reason, message=err.message)
            return
        yield from rejections
        for event in events:
            mapped = self._mapping.map(event)
            for result in [mapped] if isinstance(mapped, Rejection) else mapped:
                if isinstance(result, Rejection) or result.kind is self._kind:
                    yield result

    def _finish(self, unit: PersonalizeRecord) -> Finished:
        record, event = unit.record, unit.event
        if self._kind is not EventKind.INTERACTION:
            return None, self._validation.finish_record(self.schema.dataset_type, record)
        if event.user_id is None:
            raise RejectedError("missing_user_id", "userId: an anonymous event cannot be imported (no login ties "
                                "it to a user in a file)")
        check_id(event.user_id, "userId", "user_id")
        return event.user_id, self._validation.finish_interaction(record)


_IMPORT_SOURCE = SourceRef(source_id="import", message_id="import")
