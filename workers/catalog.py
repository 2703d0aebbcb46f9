"""Item metadata for decorating recommendations: a catalog CSV or the PutItems records the hub delivered."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from hub.errors import HubError
from workers import objects


class CatalogError(HubError):
    """The catalog cannot be read: a clear reason instead of a run that decorates nothing."""


def load_catalog(uri: str, columns: Iterable[str] = (), s3: Any = None) -> dict[str, dict[str, Any]]:
    """item id → {column: value} for the wanted `columns` (case-insensitive; empty: every column).

    `.csv`: a header row `ITEM_ID,…` (Personalize's Items dataset layout); columns are lower-cased, so
    NAME becomes `name`, the key Braze templates and Connected Content read (docs/reference/braze.md#connected-content).
    Anything else is JSON lines of PutItems records as the hub delivers them (`{"itemId", "properties":
    "<JSON string>"}`, e.g. a `file` or `s3` destination fed with item events); a later record of an
    item replaces the earlier one, as PutItems does. Values are kept as given: no invented data.
    """
    wanted = {c.lower() for c in columns}
    lines = objects.read_lines(uri, s3)
    if uri.lower().endswith(".csv"):
        return _from_csv(uri, lines, wanted)
    return _from_put_items(uri, lines, wanted)


def _decoded(uri: str, lines: Iterator[bytes]) -> Iterator[str]:
    for number, line in enumerate(lines, 1):
        try:
            yield line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise CatalogError(f"{uri}: line {number} is not UTF-8") from None


def _from_csv(uri: str, lines: Iterator[bytes], wanted: set[str]) -> dict[str, dict[str, Any]]:
    rows = csv.reader(_decoded(uri, lines))
    header = next(rows, None)
    if not header:
        raise CatalogError(f"{uri}: empty catalog")
    names = [h.strip().lower() for h in header]
    if "item_id" not in names:
        raise CatalogError(f"{uri}: the header has no ITEM_ID column (found {', '.join(header)})")
    id_column = names.index("item_id")
    missing = wanted - set(names)
    if missing:
        raise CatalogError(f"{uri}: item_metadata names columns the catalog lacks: {', '.join(sorted(missing))}")
    keep = [(i, n) for i, n in enumerate(names) if i != id_column and (not wanted or n in wanted)]
    catalog: dict[str, dict[str, Any]] = {}
    for row in rows:
        if len(row) <= id_column or not row[id_column]:
            continue  # a row without an id cannot decorate anything
        catalog[row[id_column]] = {name: row[i] for i, name in keep if i < len(row) and row[i] != ""}
    return catalog


def _from_put_items(uri: str, lines: Iterator[bytes], wanted: set[str]) -> dict[str, dict[str, Any]]:
    catalog: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines, 1):
        try:
            record = orjson.loads(line)
            properties = record.get("properties") or {}
            if isinstance(properties, str):  # PutItems sends properties as a JSON string
                properties = orjson.loads(properties)
            item_id = record["itemId"]
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise CatalogError(f"{uri}: line {number} is not a PutItems record {{\"itemId\", \"properties\"}}") from None
        catalog[item_id] = {k: v for k, v in properties.items() if not wanted or k.lower() in wanted}
    return catalog

