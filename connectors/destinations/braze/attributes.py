"""Braze's attribute shape limits, and each user's template items shaped, checked and encoded against them.

Runs once per user of an export (a million in a large one), so the common case avoids walking the
values twice: items are checked as they are shaped, and an item's encoded form is reused for every
user it is recommended to (`EncodedItems`). Anything unusual takes the full walk, which names the problem.
"""

from __future__ import annotations

from operator import is_, itemgetter
from typing import Any, Literal

import orjson

from hub.errors import RejectedError

# An array-of-objects attribute is "max 50 KB" in total (docs/reference/braze.md#userstrack); trigger/Canvas entry
# properties too (docs/reference/braze.md#campaign-and-canvas-trigger-send).
PROPERTIES_MAX_BYTES = 50 * 1024
# Nested attribute keys and string values are at most 255 characters; keys may not contain spaces
# (docs/reference/braze.md#userstrack).
MAX_STRING_CHARS = 255
# An item's fields that are not template metadata (template_items in connectors/formats/recommendations.py).
_NOT_METADATA = frozenset({"itemId", "score"})
# Distinct items whose encoded form is kept: a catalog's worth for most shops, ~10 MB at most.
MAX_ENCODED_ITEMS = 50_000


def shape_item(item: dict[str, Any], fields: list[str] | None, known_keys: set[str]) -> tuple[dict[str, Any], bool]:
    """One item as `UserRecommendations.template_items` shapes it (no score), and whether it is within limits.

    `known_keys` remembers item keys already found acceptable, so each is checked once per destination.
    """
    item_id = item["itemId"]
    out = {"id": item_id}
    fine = len(item_id) <= MAX_STRING_CHARS
    pairs = item.items() if fields is None else ((k, item.get(k)) for k in fields)
    for key, value in pairs:
        if value is None or (fields is None and key in _NOT_METADATA):
            continue
        out[key] = value
        if key not in known_keys:
            if " " in key or len(key) > MAX_STRING_CHARS:
                fine = False
                continue
            known_keys.add(key)
        kind = type(value)
        if (kind is str and len(value) > MAX_STRING_CHARS) or kind is dict or kind is list:
            fine = fine and kind is not str and within_limits(value)
    return out, fine


class EncodedItems:
    """Template items encoded per item id, reused while an item carries the very same metadata objects.

    The workers give every user the same metadata objects of a catalog item (workers/outputs.py), so a
    large export shapes, checks and encodes each of its few thousand items once instead of ten times
    per user. Identity, not equality, decides: `1 == 1.0 == True` would encode differently. Items from
    elsewhere simply miss and are shaped afresh.
    """

    def __init__(self, fields: list[str] | None, with_score: bool):
        self.fields = fields
        self.with_score = with_score
        self.known_keys: set[str] = set()
        # item id → (len(item) or None, has a score key, values getter, values, encoded item)
        self._entries: dict[str, tuple[int | None, bool, Any, tuple[Any, ...], bytes]] = {}
        # A configured "score" column would be written twice by splicing the score in: never reuse then.
        self._enabled = not (with_score and fields is not None and "score" in fields)
        # Catalog entry's id() → its encoded item without score (see `encode_catalog`). The entries are held
        # in `_held`, so while an id is in the map it names that entry and no other object.
        self._by_entry: dict[int, bytes] = {}
        self._held: list[dict[str, Any]] = []
        self._catalog_enabled = fields is None or "score" not in fields

    def encode(self, items: list[dict[str, Any]]) -> bytes | None:
        """The items as a JSON array, or None when one is outside the limits or its score is not a number."""
        if not self._enabled:
            return None
        entries, parts, with_score = self._entries, [], self.with_score
        try:
            for item in items:
                entry = entries.get(item["itemId"])
                # Same keys (len and score presence, with every cached key still there) and same objects.
                if (entry is None or (entry[0] is not None and (len(item) != entry[0] or ("score" in item) != entry[1]))
                        or not all(map(is_, entry[2](item), entry[3]))):
                    entry = self._entry(item)
                    if entry is None:
                        return None
                if with_score and (score := item.get("score")) is not None:
                    if type(score) is not float and type(score) is not int:
                        return None
                    parts.append(b"".join((entry[4][:-1], b',"score":', orjson.dumps(score), b"}")))
                else:
                    parts.append(entry[4])
        except KeyError:  # a metadata key the cached item had is gone: shape this user afresh
            return None
        return b"".join((b"[", b",".join(parts), b"]"))

    def encode_catalog(self, catalog_items: list[dict[str, Any]], scores: list[Any] | None) -> bytes | None:
        """As `encode`, for items copied from shared catalog entries (`UserRecommendations.catalog_items`)
        with `scores` (`UserRecommendations.scores`).

        Each entry is shaped, checked and encoded once per export, then found by identity: no per-value
        comparison, as the entries are the workers' own and never change.
        """
        if not self._catalog_enabled:
            return None
        parts = list(map(self._by_entry.get, map(id, catalog_items)))  # one lookup per item, in C
        if None in parts:
            for rank, entry in enumerate(catalog_items):
                if parts[rank] is None:
                    shaped, fine = shape_item(entry, self.fields, self.known_keys)
                    if not fine:
                        return None
                    parts[rank] = orjson.dumps(shaped)
                    if len(self._held) < MAX_ENCODED_ITEMS:
                        self._held.append(entry)
                        self._by_entry[id(entry)] = parts[rank]
        if self.with_score and scores is not None:
            for rank, score in enumerate(scores):
                if score is not None:
                    if type(score) is not float and type(score) is not int:
                        return None
                    parts[rank] = b"".join((parts[rank][:-1], b',"score":', orjson.dumps(score), b"}"))
        return b"".join((b"[", b",".join(parts), b"]"))

    def joined(self, catalog_items: list[dict[str, Any]]) -> bytes | None:
        """The items' encodings without scores joined by commas, when `encode_catalog` met every entry
        before (else None): one lookup per item, in C."""
        try:
            return b",".join(map(self._by_entry.__getitem__, map(id, catalog_items)))
        except KeyError:
            return None

    def _entry(self, item: dict[str, Any]) -> tuple[int | None, bool, Any, tuple[Any, ...], bytes] | None:
        shaped, fine = shape_item(item, self.fields, self.known_keys)
        if not fine:
            return None
        if self.fields is None:  # the item's own keys: all of them, and only them, must be there next time
            values_of = _values_getter(tuple(k for k in item if k not in _NOT_METADATA))
            entry = (len(item), "score" in item, values_of, values_of(item), orjson.dumps(shaped))
        else:
            values_of = _fields_getter(self.fields)
            entry = (None, False, values_of, values_of(item), orjson.dumps(shaped))
        if item["itemId"] in self._entries or len(self._entries) < MAX_ENCODED_ITEMS:
            self._entries[item["itemId"]] = entry
        return entry


def _fields_getter(fields: list[str]) -> Any:
    """item → tuple of its values at the configured `fields`, None where it has none."""
    return lambda item: tuple(map(item.get, fields))


def _values_getter(keys: tuple[str, ...]) -> Any:
    """item → tuple of its values at `keys` (KeyError if one is missing), for any number of keys."""
    if len(keys) >= 2:
        return itemgetter(*keys)
    if len(keys) == 1:
        key = keys[0]
        return lambda item: (item[key],)
    return lambda item: ()


def check_values(values: dict[str, Any], size: int, checked: str | Literal[False] = False) -> None:
    """Braze's documented shape limits, checked per user so one oversized profile fails alone.

    `size` is the length of the encoded values; `checked` names a value already found within the
    limits (the items, checked as they were shaped), which the quick pass skips.
    """
    if size > PROPERTIES_MAX_BYTES:
        raise RejectedError("properties_too_large",
                            f"{size} bytes of attributes exceed Braze's 50 KB limit (docs/reference/braze.md#userstrack, #campaign-and-canvas-trigger-send)")
    for key, value in values.items():
        if not _key_fine(key) or (key != checked and not within_limits(value)):
            break
    else:
        return
    # Something is off: walk everything for the first problem in a stable order, with its path.
    for key in _keys(values):
        if not _key_fine(key):
            raise RejectedError("invalid_attribute_name", f"{key!r}: Braze keys are ≤ {MAX_STRING_CHARS} "
                                "characters without spaces (docs/reference/braze.md#userstrack)")
    for key, value in _strings(values):
        if len(value) > MAX_STRING_CHARS:
            raise RejectedError("value_too_long", f"{key} is {len(value)} characters; Braze allows "
                                f"{MAX_STRING_CHARS} (docs/reference/braze.md#userstrack)")


def within_limits(node: Any) -> bool:
    """No string or key in `node` breaks Braze's limits (a quick yes/no; `check_values` says what)."""
    if isinstance(node, str):
        return len(node) <= MAX_STRING_CHARS
    if isinstance(node, dict):
        return all(_key_fine(k) and within_limits(v) for k, v in node.items())
    if isinstance(node, list):
        if set(map(type, node)) == {str}:  # a list of ids: one pass in C
            return max(map(len, node)) <= MAX_STRING_CHARS
        return all(map(within_limits, node))
    return True


def _key_fine(key: Any) -> bool:
    if type(key) is not str:
        key = str(key)
    return " " not in key and len(key) <= MAX_STRING_CHARS


def _keys(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [key for k, value in node.items() for key in (str(k), *_keys(value))]
    if isinstance(node, list):
        return [key for value in node for key in _keys(value)]
    return []


def _strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, str):
        return [(path, node)]
    if isinstance(node, dict):
        return [pair for key, value in node.items() for pair in _strings(value, f"{path}.{key}" if path else key)]
    if isinstance(node, list):
        return [pair for i, value in enumerate(node) for pair in _strings(value, f"{path}[{i}]")]
    return []
