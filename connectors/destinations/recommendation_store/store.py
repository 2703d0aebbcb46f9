"""The precomputed recommendation store in Redis: what batch exports write and /recommendations reads.

Layout (the one place it is defined): `<prefix>:user:<user_id>` is a hash per user whose fields are
variants ("default", or the name of the filter the export job applied) and whose values are JSON
`{"items": [{"id", <metadata>…}], "job", "runId", "generatedAt"}`, items in rank order, in the shape
Braze templates read (docs/reference/braze.md#connected-content). `<prefix>:items` is a hash item id → JSON metadata,
filled by the same exports, which decorates live recommendations. `<prefix>:cache:<digest>` holds cached live
answers with a TTL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

DEFAULT_PREFIX = "hub:recs"
DEFAULT_VARIANT = "default"


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One user's precomputed recommendations for one variant, as written by an export."""

    user_id: str
    variant: str
    items: list[dict[str, Any]]
    job: str
    run_id: str
    generated_at: float

    def to_json(self) -> bytes:
        return orjson.dumps({"items": self.items, "job": self.job, "runId": self.run_id,
                             "generatedAt": self.generated_at})


class RecommendationStore:
    """Reads and writes the layout above through a `redis.asyncio.Redis` client (bytes, not decoded)."""

    def __init__(self, redis: Any, prefix: str = DEFAULT_PREFIX):
        self.redis = redis
        self.prefix = prefix
        self.items_key = f"{prefix}:items"

    def user_key(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}"

    def cache_key(self, *parts: object) -> str:
        # Hashed: user ids and filter names may hold anything, and keys stay short.
        digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).hexdigest()
        return f"{self.prefix}:cache:{digest}"

    async def read(self, user_id: str, variant: str = DEFAULT_VARIANT) -> dict[str, Any] | None:
        """The stored entry (decoded JSON) or None when the user has none for this variant."""
        raw = await self.redis.hget(self.user_key(user_id), variant)
        return orjson.loads(raw) if raw is not None else None

    async def write(self, entries: Sequence[StoredEntry], ttl_secs: int | None = None) -> None:
        """Overwrite each user's variant and remember the items' metadata; one round trip.

        An overwrite is idempotent, so a resent export leaves the store as one send would.
        """
        pipe = self.redis.pipeline(transaction=False)
        metadata: dict[str, bytes] = {}
        for entry in entries:
            key = self.user_key(entry.user_id)
            pipe.hset(key, entry.variant, entry.to_json())
            if ttl_secs:
                pipe.expire(key, ttl_secs)
            for item in entry.items:
                metadata[item["id"]] = orjson.dumps({k: v for k, v in item.items() if k != "score"})
        if metadata:
            pipe.hset(self.items_key, mapping=metadata)
        await pipe.execute()

    async def decorate(self, item_ids: Iterable[str],
                       scores: Sequence[float | None] | None = None) -> list[dict[str, Any]]:
        """Items with the metadata exports recorded; an item never exported keeps only its id (and score)."""
        ids = list(item_ids)
        if not ids:
            return []
        known = await self.redis.hmget(self.items_key, ids)
        items = []
        for rank, (item_id, raw) in enumerate(zip(ids, known, strict=True)):
            item = {"id": item_id, **(orjson.loads(raw) if raw is not None else {})}
            if scores is not None and scores[rank] is not None:
                item["score"] = scores[rank]
            items.append(item)
        return items

    async def cached(self, key: str) -> Any | None:
        raw = await self.redis.get(key)
        return orjson.loads(raw) if raw is not None else None

    async def cache(self, key: str, value: Any, ttl_secs: float) -> None:
        await self.redis.set(key, orjson.dumps(value), px=max(1, int(ttl_secs * 1000)))
