"""Writes each user's recommendations into the Redis store GET /recommendations serves (Connected Content)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from connectors.destinations.http_delivery import MemberFailures, lane_of
from connectors.destinations.recommendation_store import store
from connectors.destinations.recommendation_store.store import DEFAULT_PREFIX, DEFAULT_VARIANT, StoredEntry
from connectors.formats.recommendations import USER_RECOMMENDATIONS, user_recommendations
from hub.connector import BatchPolicy, Context, ExportDestination, ExportDestinationConfig
from hub.errors import RejectedError, RetryableError
from hub.redis_connection import async_client
from hub.rows import ExportRow


class RecommendationStoreConfig(ExportDestinationConfig):
    """Fills the hub's own recommendation store (Redis), which `GET /recommendations` answers from.

    Each export overwrites the user's entry for `variant`, so resending is safe. Give the endpoint's
    `recommendations.key_prefix` the same prefix.
    """

    type: Literal["recommendation_store"]
    example: ClassVar[dict[str, Any]] = {"type": "recommendation_store", "redis_url": "${REDIS_URL}"}
    # Redis has no API limit; 500 users per pipelined round trip keeps each write ~1 ms and memory small.
    api_limits: ClassVar[BatchPolicy] = BatchPolicy(max_events=500, max_wait_secs=0.05, max_in_flight=4)

    redis_url: str = Field(..., description="Redis of the store, e.g. ${REDIS_URL}.")
    key_prefix: str = Field(DEFAULT_PREFIX, description="Key prefix; the endpoint's recommendations.key_prefix.")
    variant: str = Field(
        DEFAULT_VARIANT,
        description="Name the entry is stored under: `default`, or the name of the filter the job applied, "
        "served for `filter=<name>`.",
    )
    item_fields: list[str] | None = Field(
        None, description="Metadata columns kept per item (default: every column the job decorated with)."
    )
    include_score: bool = Field(False, description="Keep each item's score in the served JSON.")
    ttl_secs: int | None = Field(
        None, ge=1, description="Expire a user's entries this long after their last export; none: keep. "
        "Jobs skip users whose recommendations did not change, so a TTL shorter than the schedule drops them.",
    )


class RecommendationStore(ExportDestination):
    """Redis writer of the precomputed recommendations served to templates."""

    Config = RecommendationStoreConfig
    config: RecommendationStoreConfig
    idempotent = True  # an overwrite per (user, variant)

    def __init__(self, config: RecommendationStoreConfig, context: Context, *, redis: Any = None):
        super().__init__(config, context)
        self._redis = redis
        self._owns_redis = redis is None
        self._store: store.RecommendationStore | None = None
        self._lanes = config.batch_policy().max_in_flight

    export_rows = frozenset({USER_RECOMMENDATIONS})

    def partition_key(self, row: ExportRow) -> str:
        return lane_of(row.user_id or row.message_id, self._lanes)

    async def start(self) -> None:
        if self._store is None:
            if self._redis is None:
                self._redis = async_client(self.config.redis_url)
            self._store = store.RecommendationStore(self._redis, self.config.key_prefix)

    async def close(self) -> None:
        if self._owns_redis and self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        self._store = None

    async def send(self, batch: Sequence[ExportRow]) -> None:
        await self.start()
        assert self._store is not None
        failures = MemberFailures(len(batch))
        entries, positions = [], []
        for index, row in enumerate(batch):
            try:
                recs = user_recommendations(row)
            except RejectedError as err:
                failures.reject(index, err)
                continue
            items = recs.template_items(self.config.item_fields, with_score=self.config.include_score)
            entries.append(StoredEntry(recs.user_id, self.config.variant, items, recs.job, recs.run_id,
                                       generated_at=row.timestamp or time.time()))
            positions.append(index)
        if entries:
            try:
                await self._store.write(entries, self.config.ttl_secs)
            except Exception as err:  # noqa: BLE001 - connection errors, timeouts, a Redis failover
                failures.absorb(RetryableError(f"redis: {type(err).__name__}: {err}"), positions)
        failures.raise_if_any()
