"""The recommendation export records the batch side hands to destinations, checked and reshaped.

The contract with `workers/`: a per-user export is an ExportRow of shape "recommendations" whose
`record` is ``{"userId", "email"?, "job", "runId", "items": [{"itemId", "score"?, <metadata>…}],
"attributes"?}``; a segment export has shape "segment" with ``{"itemId", "users": [...]}``. Destinations
call `user_recommendations` / `segment_audience` and never read the dict themselves, so a malformed
record is rejected with one reason code wherever it goes. The workers hand a per-user record as a
`UserRecord` (still that dict) carrying its checked `UserRecommendations`, built once per user for every
destination instead of once per destination. When every destination of a job reads that view only
(`ExportDestination.reads_views`), the workers leave the items out of the dict and the view makes them
from the shared catalog entries on first read: most users' items are never copied (bench/braze_export.py).
"""

from __future__ import annotations

import re
from typing import Any

from hub.errors import RejectedError
from hub.rows import ExportRow

USER_RECOMMENDATIONS = "recommendations"  # ExportRow.shape of a per-user export
SEGMENT_AUDIENCE = "segment"  # ExportRow.shape of an item's audience from a batch segment job
RELATED_ITEMS = "related_items"  # ExportRow.shape of an item's similar items
INVALID = "invalid_export_record"
# One address, no whitespace or line breaks: it ends up in a mail header.
_ADDRESS = re.compile(r"[^\s@]+@[^\s@]+")


class UserRecommendations:
    """One user's recommendations as destinations read them; `items` are in rank order."""

    __slots__ = ("user_id", "email", "job", "run_id", "_items", "attributes", "item_ids", "catalog_items", "scores")

    def __init__(self, user_id: str, email: str | None, job: str, run_id: str,
                 items: list[dict[str, Any]] | None, attributes: dict[str, Any], item_ids: list[str] | None = None,
                 catalog_items: list[dict[str, Any]] | None = None, scores: list[float] | None = None):
        self.user_id = user_id
        self.email = email
        self.job = job
        self.run_id = run_id
        self._items = items  # None: made from `catalog_items` and `scores` when first read
        self.attributes = attributes
        self.item_ids: list[str] = item_ids if item_ids is not None else [item["itemId"] for item in self.items]
        # Per rank, the catalog entry `items[rank]` was copied from: the same object for every user the
        # item is recommended to, equal to the item but for a "score" of None. Lets a destination shape and
        # encode an item once per export rather than once per user (connectors/destinations/braze/attributes.py).
        self.catalog_items = catalog_items
        self.scores = scores  # per rank, each item's score when the items came with scores (catalog_items set)

    @property
    def items(self) -> list[dict[str, Any]]:
        """`{"itemId", "score"?, <metadata>…}` per rank: copies of their catalog entries with this user's scores."""
        if self._items is None:
            self._items = copied_items(self.catalog_items or [], self.scores)
        return self._items

    def template_items(self, fields: list[str] | None = None, *, with_score: bool = False) -> list[dict[str, Any]]:
        """Items in the shape Braze templates and Connected Content expect: `id` plus metadata.

        docs/reference/braze.md#userstrack, #connected-content: `[{"id","url","name","price","image"}]`. `fields` picks
        metadata columns (None = every column the job decorated with); a column an item lacks is left out,
        never filled with a placeholder.
        """
        shaped = []
        for item in self.items:
            out: dict[str, Any] = {"id": item["itemId"]}
            keys = fields if fields is not None else [k for k in item if k not in ("itemId", "score")]
            for key in keys:
                if key in item and item[key] is not None:
                    out[key] = item[key]
            if with_score and item.get("score") is not None:
                out["score"] = item["score"]
            shaped.append(out)
        return shaped


def copied_items(entries: list[dict[str, Any]], scores: list[float] | None) -> list[dict[str, Any]]:
    """A user's own items from shared catalog entries (`{"itemId", "score": None, …}` when scored) and scores."""
    items = list(map(dict.copy, entries))
    if scores is not None:
        for item, score in zip(items, scores):
            item["score"] = score
    return items


class UserRecord(dict):  # type: ignore[type-arg]
    """A per-user record: the dict above (what destinations that write records as they are write) and,
    once `check`ed, its `UserRecommendations`."""

    __slots__ = ("recommendations",)

    def check(self, catalog_items: list[dict[str, Any]] | None = None, scores: list[float] | None = None
              ) -> UserRecord:
        """Check the record once for every destination. One that fails keeps no view, so each destination
        rejects it as `user_recommendations` always did, naming the field.

        `catalog_items`: per rank, the catalog entry (keyed by a non-empty item id) the item was copied from,
        and `scores` the scores the copies were given.
        """
        recommendations = None
        if self.get("job"):  # else the row's job fills it in (user_recommendations)
            try:
                recommendations = _checked(self, None, None, catalog_items is not None)
                recommendations.catalog_items = catalog_items
                recommendations.scores = scores
            except RejectedError:
                pass
        self.recommendations = recommendations
        return self


def catalog_view(user_id: str, email: Any, job: str, run_id: str, item_ids: list[str],
                 entries: list[dict[str, Any]], scores: list[float] | None,
                 attributes: Any) -> UserRecommendations | None:
    """The checked view of a record whose items would be copies of catalog `entries` (each keyed by a non-empty
    id, `item_ids` in rank order), made without copying them; None when the record needs `check`, which
    names what is wrong. `email` is the record's (None when it has none)."""
    if (not job or not user_id or not isinstance(attributes, dict)
            or (email is not None and (not isinstance(email, str) or not _ADDRESS.fullmatch(email)))):
        return None
    return UserRecommendations(user_id, email, job, run_id, None, attributes, item_ids, entries, scores)


def is_user_recommendations(row: ExportRow) -> bool:
    return row.shape == USER_RECOMMENDATIONS


def is_segment_audience(row: ExportRow) -> bool:
    return row.shape == SEGMENT_AUDIENCE


def user_recommendations(row: ExportRow) -> UserRecommendations:
    """The checked per-user record of a "recommendations" row; RejectedError naming the bad field."""
    record = row.record
    if type(record) is UserRecord and (checked := getattr(record, "recommendations", None)) is not None:
        return checked  # checked once when the workers made it
    return _checked(record, row.user_id, row.source.source_id)


def _checked(record: Any, user_id: str | None, job: str | None, ids_known: bool = False) -> UserRecommendations:
    if not isinstance(record, dict):
        raise RejectedError(INVALID, "record is missing or not an object")
    user_id = record.get("userId") or user_id
    if not isinstance(user_id, str) or not user_id:
        raise RejectedError(INVALID, "userId is missing or not a non-empty string")
    email = record.get("email")
    if email is not None and (not isinstance(email, str) or not _ADDRESS.fullmatch(email)):
        raise RejectedError(INVALID, f"email {email!r} is not an address")
    items = record.get("items")
    if not isinstance(items, list):
        raise RejectedError(INVALID, "items is missing or not a list")
    # Items copied from catalog entries are dicts keyed by their non-empty string ids already.
    item_ids = [item["itemId"] for item in items] if ids_known else _item_ids(items)
    attributes = record.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise RejectedError(INVALID, "attributes is not an object")
    return UserRecommendations(
        user_id=user_id,
        email=email,
        job=str(record.get("job") or job),
        run_id=str(record.get("runId") or ""),
        items=items,
        attributes=attributes,
        item_ids=item_ids,
    )


def _item_ids(items: list[Any]) -> list[str]:
    """Each item's non-empty string itemId; RejectedError naming the first item without one."""
    item_ids = []
    for rank, item in enumerate(items):
        item_id = item.get("itemId") if isinstance(item, dict) else None
        if not isinstance(item_id, str) or not item_id:
            raise RejectedError(INVALID, f"items[{rank}].itemId is missing or not a non-empty string")
        item_ids.append(item_id)
    return item_ids


def segment_audience(row: ExportRow) -> tuple[str, list[str]]:
    """(itemId, users) of a "segment" row; RejectedError naming the bad field."""
    record = row.record
    if not isinstance(record, dict):
        raise RejectedError(INVALID, "record is missing or not an object")
    item_id, users = record.get("itemId"), record.get("users")
    if not isinstance(item_id, str) or not item_id:
        raise RejectedError(INVALID, "itemId is missing or not a non-empty string")
    if not isinstance(users, list) or not all(isinstance(u, str) and u for u in users):
        raise RejectedError(INVALID, "users is missing or not a list of non-empty strings")
    return item_id, users
