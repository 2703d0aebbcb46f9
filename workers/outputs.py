"""Batch output lines (docs/reference/personalize-api.md#batch-inference-jobs, #batch-segment-jobs) decoded, decorated with item metadata, and hashed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import msgspec
import orjson

from connectors.formats.recommendations import UserRecord, catalog_view, copied_items
from workers.config import Recipe

SAMPLE_CHARS = 300  # a malformed line is quoted in the report up to this length
# Catalog items kept ready-merged with their item id, and their digest encodings: copying one is a third
# of the cost of merging per user, encoding it once saves the digest's per-user walk (bench/braze_export.py);
# bounded so a catalog of millions costs at most ~40 MB more.
MAX_MERGED_ITEMS = 50_000
# What follows a user's items in the digest's encoding when there is no users list: email None, attributes {}.
_NO_CONTACT_TAIL = b"],null,{}]"


class _Output(msgspec.Struct):
    recommendedItems: list[str] | None = None  # noqa: N815 - the wire names
    scores: list[float] | None = None
    recommendedUsers: list[str] | None = None  # noqa: N815


class _Line(msgspec.Struct):
    input: Any = None  # the input line as sent, or its raw text when it was not JSON
    output: _Output | None = None
    error: str | None = None  # non-null on a failed line (docs/reference/personalize-api.md#batch-inference-jobs)


_decode = msgspec.json.Decoder(_Line).decode


@dataclass(slots=True)
class LineError:
    """An output line that yields nothing to send: counted and reported, never fatal."""

    reason: str
    message: str


@dataclass(slots=True)
class Decorated:
    """One recipient's export: the record destinations read and the digest compared with the last sync."""

    key: str  # userId, or itemId for related items and segments
    record: dict[str, Any]
    digest: str
    missing_items: int  # recommended items the catalog did not know


def digest_of(*parts: Any) -> str:
    """A short, stable hash of what a recipient would receive (run ids excluded: they change every run)."""
    return _digest(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS))


def _digest(*encoded: bytes | memoryview) -> str:
    """The digest of the pieces' concatenation, hashed piece by piece: a user's items are not copied to wrap them."""
    digest = hashlib.blake2b(digest_size=12)
    for piece in encoded:
        digest.update(piece)
    return digest.hexdigest()


def _digest_part(entry: dict[str, Any], scored: bool) -> bytes | None:
    """A merged catalog entry's encoding in `digest_of` (keys sorted) followed by ",": for a scored item a
    template taking the user's score as its one `%b` (the entry's own "%" doubled), or None when that
    would not give `digest_of`'s very bytes (checked on a probe score)."""
    sort = orjson.OPT_SORT_KEYS
    if not scored:
        return orjson.dumps(entry, option=sort) + b","
    pairs = [(k, orjson.dumps(k) + b":" + orjson.dumps(v, option=sort)) for k, v in entry.items() if k != "score"]
    pairs.sort()
    head = b"{" + b"".join(p + b"," for k, p in pairs if k < "score") + b'"score":'
    tail = b"".join(b"," + p for k, p in pairs if k > "score") + b"}"
    template = head.replace(b"%", b"%%") + b"%b" + tail.replace(b"%", b"%%") + b","
    probe = 0.123456789
    if template % (orjson.dumps(probe),) != orjson.dumps({**entry, "score": probe}, option=sort) + b",":
        return None
    return template


class Decorator:
    """Turns raw output lines of one job into records, per the recipe (`Recipe`)."""

    def __init__(self, recipe: Recipe, job: str, run_id: str, catalog: dict[str, dict[str, Any]] | None,
                 keep_items_without_metadata: bool, *, views_only: bool = False):
        self.recipe = recipe
        self._input_key, self._segment = recipe.input_key, recipe.is_segment  # read per line: looked up once
        self.job = job
        self.run_id = run_id
        self.catalog = catalog
        self.keep_unknown = keep_items_without_metadata or catalog is None
        # Every destination reads per-user records only through their view (ExportDestination.reads_views):
        # a user's items are then not copied into the record, the view copies them if a destination asks.
        self.views_only = views_only
        # By item id, for scored and unscored lines: the catalog entry merged with its id ({"itemId", "score":
        # None, **metadata} or {"itemId", **metadata}) and its `_digest_part` (None when refused). One tuple
        # and one encoding per item: a user's ten items are ten random reads of a catalog that outgrows the
        # CPU caches, each of which costs more than the work done on it (bench/braze_export.py).
        self._prepared: dict[bool, dict[str, _Prepared]] = {True: {}, False: {}}

    def read(self, raw: bytes) -> tuple[str, _Line] | LineError:
        """The recipient key and the decoded line, or why the line yields nothing."""
        try:
            line = _decode(raw)
        except msgspec.ValidationError as err:  # a subclass of DecodeError: valid JSON, wrong shape
            return LineError("invalid_line", f"{err}: {_sample(raw)}")
        except msgspec.DecodeError:
            return LineError("invalid_json", _sample(raw))
        if line.error is not None:
            return LineError("personalize_error", f"{line.error}: {_sample(raw)}")
        key = line.input.get(self._input_key) if type(line.input) is dict else None
        if not isinstance(key, str) or not key:
            return LineError("missing_input_id", f"input has no {self.recipe.input_key}: {_sample(raw)}")
        if line.output is None:
            return LineError("missing_output", _sample(raw))
        return key, line

    def decorate(self, key: str, line: _Line, raw: bytes, contact: dict[str, Any] | None = None
                 ) -> Decorated | LineError:
        """The record for one read line; `contact` adds the email and attributes from the users list."""
        assert line.output is not None
        if self._segment:
            return self._audience(key, line.output, raw)
        return self._items(key, line.output, raw, contact)

    def _audience(self, item_id: str, output: _Output, raw: bytes) -> Decorated | LineError:
        users = output.recommendedUsers
        if users is None:
            return LineError("missing_output", f"no recommendedUsers: {_sample(raw)}")
        record = {"itemId": item_id, "users": users, "job": self.job, "runId": self.run_id}
        return Decorated(item_id, record, digest_of(users), 0)

    def _items(self, key: str, output: _Output, raw: bytes, contact: dict[str, Any] | None) -> Decorated | LineError:
        item_ids, scores = output.recommendedItems, output.scores
        if item_ids is None:
            return LineError("missing_output", f"no recommendedItems: {_sample(raw)}")
        if scores is not None and len(scores) != len(item_ids):
            return LineError("invalid_line", f"{len(scores)} scores for {len(item_ids)} items: {_sample(raw)}")
        scored = scores is not None
        prepared = self._prepared[scored]
        found = list(map(prepared.get, item_ids))
        if None in found:
            found = [prepared.get(item_id) or self._prepare(item_id, scored) for item_id in item_ids]
        # SIMS, Similar-Items and Popularity-Count return no scores
        # (docs/reference/personalize-api.md#batch-inference-jobs): no score key then.
        if None not in found and item_ids:  # the common case: this runs per user, 1M times a run
            return self._from_catalog(key, item_ids, scores, found, contact)  # type: ignore[arg-type]
        catalog, items, missing = self.catalog or {}, [], 0
        for rank, item_id in enumerate(item_ids):
            metadata = catalog.get(item_id)
            if metadata is None and not self.keep_unknown:
                missing += 1
                continue
            item: dict[str, Any] = {"itemId": item_id}
            if scores is not None:
                item["score"] = scores[rank]
            items.append({**item, **(metadata or {})})
        if not items:
            reason = "no_items" if not item_ids else "no_items_with_metadata"
            return LineError(reason, f"nothing to send for {key}: {_sample(raw)}")
        if self.recipe is not Recipe.USER_RECOMMENDATIONS:
            record = {"itemId": key, "items": items, "job": self.job, "runId": self.run_id}
            return Decorated(key, record, digest_of(items), missing)
        email, attributes = _contact(contact)
        return Decorated(key, self._record(key, items, email, attributes), digest_of(items, email, attributes),
                         missing)

    def _from_catalog(self, key: str, item_ids: list[str], scores: list[float] | None,
                      found: list[_Prepared], contact: dict[str, Any] | None) -> Decorated:
        """A recipient whose items are all merged catalog entries: digested from their prepared encodings,
        and copied only when a destination reads the record itself (`views_only` off)."""
        entries = list(map(_ENTRY, found))
        items_encoded = _items_encoding(found, scores)
        if self.recipe is not Recipe.USER_RECOMMENDATIONS:
            items = copied_items(entries, scores)
            record = {"itemId": key, "items": items, "job": self.job, "runId": self.run_id}
            digest = _digest(b"[[", items_encoded, b"]]") if items_encoded is not None else digest_of(items)
            return Decorated(key, record, digest, 0)
        email, attributes = _contact(contact)
        if items_encoded is None:
            digest = digest_of(copied_items(entries, scores), email, attributes)
        elif email is None and type(attributes) is dict and not attributes:
            digest = _digest(b"[[", items_encoded, _NO_CONTACT_TAIL)
        else:  # digest_of's encoding of (items, email, attributes), the items spliced in
            digest = _digest(b"[[", items_encoded, b"],", orjson.dumps(email), b",",
                             orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS), b"]")
        if self.views_only:
            view = catalog_view(key, email or None, self.job, self.run_id, item_ids, entries, scores, attributes)
            if view is not None:
                record = UserRecord(userId=key, job=self.job, runId=self.run_id)
                record.recommendations = view
                return Decorated(key, record, digest, 0)
        return Decorated(key, self._record(key, copied_items(entries, scores), email, attributes, entries, scores),
                         digest, 0)

    def _record(self, key: str, items: list[dict[str, Any]], email: Any, attributes: Any,
                entries: list[dict[str, Any]] | None = None, scores: list[float] | None = None) -> UserRecord:
        """The checked per-user record; `entries`: the catalog entries `items` were copied from, if they were."""
        record = UserRecord(userId=key, job=self.job, runId=self.run_id, items=items)
        if email:
            record["email"] = email
        record["attributes"] = attributes
        return record.check(entries, scores)

    def _prepare(self, item_id: str, scored: bool) -> _Prepared | None:
        """The catalog item merged with its id (score None, set per user) and its digest parts, or None:
        unknown, an empty id (which destinations reject), or a "score"/"itemId" column that must win over
        the line's (the general path keeps that order)."""
        metadata = (self.catalog or {}).get(item_id)
        if metadata is None or not item_id or "score" in metadata or "itemId" in metadata:
            return None
        merged = {"itemId": item_id, "score": None, **metadata} if scored else {"itemId": item_id, **metadata}
        prepared = self._prepared[scored]
        if len(prepared) >= MAX_MERGED_ITEMS:
            return merged, None  # not kept: its digest is encoded per user rather than prepared here
        prepared[item_id] = merged, _digest_part(merged, scored)
        return prepared[item_id]


_Prepared = tuple[dict[str, Any], bytes | None]
_ENTRY, _PART = itemgetter(0), itemgetter(1)


def _items_encoding(found: list[_Prepared], scores: list[float] | None) -> memoryview | None:
    """`digest_of`'s encoding of the items as the inside of a JSON array (no brackets: the digest hashes them
    around it), from their prepared parts and the scores; None when an item has none (not kept, or
    `_digest_part` refused)."""
    parts = list(map(_PART, found))
    if None in parts:
        return None
    joined = b"".join(parts)  # type: ignore[arg-type]
    if scores is not None:
        # A float's JSON has no comma: the list's encoding splits into each score's, as orjson writes it.
        joined %= tuple(orjson.dumps(scores)[1:-1].split(b","))
    return memoryview(joined)[:-1]  # each part ends with ","


def _contact(contact: dict[str, Any] | None) -> tuple[Any, Any]:
    """(email, attributes) from a users list entry, as the digest reads them."""
    if not contact:
        return None, {}
    return contact.get("email"), contact.get("attributes") or {}


def _sample(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + "…"
