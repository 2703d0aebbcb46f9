"""Batch output lines (docs/reference/personalize-api.md#batch-inference-jobs, #batch-segment-jobs) decoded, decorated with item metadata, and hashed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from connectors.formats.recommendations import UserRecord
from workers.config import Recipe

SAMPLE_CHARS = 300  # a malformed line is quoted in the report up to this length
# Catalog items kept ready-merged with their item id: copying one is a third of the cost of merging per
# user (bench/braze_export.py); bounded so a catalog of millions costs at most ~20 MB more.
MAX_MERGED_ITEMS = 50_000


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
    return hashlib.blake2b(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()


class Decorator:
    """Turns raw output lines of one job into records, per the recipe (`Recipe`)."""

    def __init__(self, recipe: Recipe, job: str, run_id: str, catalog: dict[str, dict[str, Any]] | None,
                 keep_items_without_metadata: bool):
        self.recipe = recipe
        self.job = job
        self.run_id = run_id
        self.catalog = catalog
        self.keep_unknown = keep_items_without_metadata or catalog is None
        # {"itemId", "score": None, **metadata} (scored lines) and {"itemId", **metadata}, by item id.
        self._merged: dict[bool, dict[str, dict[str, Any]]] = {True: {}, False: {}}

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
        key = line.input.get(self.recipe.input_key) if isinstance(line.input, dict) else None
        if not isinstance(key, str) or not key:
            return LineError("missing_input_id", f"input has no {self.recipe.input_key}: {_sample(raw)}")
        if line.output is None:
            return LineError("missing_output", _sample(raw))
        return key, line

    def decorate(self, key: str, line: _Line, raw: bytes, contact: dict[str, Any] | None = None
                 ) -> Decorated | LineError:
        """The record for one read line; `contact` adds the email and attributes from the users list."""
        assert line.output is not None
        if self.recipe.is_segment:
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
        merged = self._merged[scored]
        found = list(map(merged.get, item_ids))
        if None in found:
            found = [merged.get(item_id) or self._merge(item_id, scored) for item_id in item_ids]
        missing, catalog_items = 0, None
        # SIMS, Similar-Items and Popularity-Count return no scores
        # (docs/reference/personalize-api.md#batch-inference-jobs): no score key then.
        if None not in found:  # the common case, as copies (this runs per user, 1M times a run)
            items = list(map(dict.copy, found))  # type: ignore[arg-type]
            catalog_items = found
            if scores is not None:
                for item, score in zip(items, scores):
                    item["score"] = score
        else:
            catalog = self.catalog or {}
            items = []
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
        record = UserRecord(userId=key, job=self.job, runId=self.run_id, items=items)
        email, attributes = None, {}
        if contact:
            email, attributes = contact.get("email"), contact.get("attributes") or {}
            if email:
                record["email"] = email
        record["attributes"] = attributes
        return Decorated(key, record.check(catalog_items), digest_of(items, email, attributes), missing)

    def _merge(self, item_id: str, scored: bool) -> dict[str, Any] | None:
        """The catalog item merged with its id (score None, set per user), or None: unknown, an empty id
        (which destinations reject), or a "score"/"itemId" column that must win over the line's (the
        general path keeps that order)."""
        metadata = (self.catalog or {}).get(item_id)
        if metadata is None or not item_id or "score" in metadata or "itemId" in metadata:
            return None
        merged = {"itemId": item_id, "score": None, **metadata} if scored else {"itemId": item_id, **metadata}
        if len(self._merged[scored]) < MAX_MERGED_ITEMS:
            self._merged[scored][item_id] = merged
        return merged


def _sample(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + "…"
