"""Live fallbacks for users the store lacks: GetRecommendations per user, then popular items; both cached."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from personalize_hub.recommendations.config import RecommendationsConfig, runtime_target
from connectors.destinations.recommendation_store.store import RecommendationStore

log = logging.getLogger(__name__)

RuntimeClient = Callable[[], Awaitable[Any]]  # returns a personalize-runtime client (connectors.aws)


class LiveUnavailable(Exception):
    """Personalize could not answer in time; the endpoint falls back or answers 503."""


class LiveRecommender:
    """GetRecommendations on the configured campaigns or recommenders, decorated from the store's item metadata
    and, with `metadata_columns`, the metadata Personalize returns.

    Answers are cached in Redis for `cache_ttl_secs`: Braze may call more than once per recipient
    (HTML and text parts, retries; docs/reference/braze.md#connected-content) and a campaign allows 500 TPS
    (docs/reference/personalize-api.md#quotas), far below a send's burst.
    """

    def __init__(self, config: RecommendationsConfig, store: RecommendationStore, runtime_client: RuntimeClient):
        self.config = config
        self.store = store
        self._runtime_client = runtime_client

    @property
    def has_user_campaign(self) -> bool:
        return self.config.campaign_arn is not None

    @property
    def has_popular_campaign(self) -> bool:
        return self.config.popular_campaign_arn is not None

    async def for_user(self, user_id: str, num_results: int, filter_arn: str | None) -> list[dict[str, Any]]:
        assert self.config.campaign_arn is not None
        key = self.store.cache_key("user", self.config.campaign_arn, user_id, filter_arn, num_results)
        return await self._cached(key, self.config.campaign_arn, user_id, num_results, filter_arn)

    async def popular(self, user_id: str, num_results: int, filter_arn: str | None) -> list[dict[str, Any]]:
        """Popularity-Count needs no userId (docs/reference/personalize-api.md#getrecommendations) unless a filter refers to the user."""
        assert self.config.popular_campaign_arn is not None
        user = user_id if filter_arn else None
        key = self.store.cache_key("popular", self.config.popular_campaign_arn, user, filter_arn, num_results)
        return await self._cached(key, self.config.popular_campaign_arn, user, num_results, filter_arn)

    async def _cached(self, key: str, campaign_arn: str, user_id: str | None, num_results: int,
                      filter_arn: str | None) -> list[dict[str, Any]]:
        hit = await self.store.cached(key)
        if hit is not None:
            return hit
        items = await self._get(campaign_arn, user_id, num_results, filter_arn)
        await self.store.cache(key, items, self.config.cache_ttl_secs)
        return items

    async def _get(self, campaign_arn: str, user_id: str | None, num_results: int,
                   filter_arn: str | None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {**runtime_target(campaign_arn), "numResults": num_results}
        if user_id is not None:
            params["userId"] = user_id
        if filter_arn is not None:
            params["filterArn"] = filter_arn
        if self.config.metadata_columns:
            params["metadataColumns"] = {"ITEMS": self.config.metadata_columns}
        try:
            client = await self._runtime_client()
            answer = await asyncio.wait_for(client.get_recommendations(**params), self.config.live_timeout_secs)
        except Exception as err:  # botocore, aiohttp and timeout errors alike mean "no live answer now"
            log.warning("GetRecommendations on %s failed: %s", campaign_arn, err)
            raise LiveUnavailable(f"{type(err).__name__}: {err}") from err
        listed = answer.get("itemList") or []
        # SIMS and Popularity-Count return no score (docs/reference/personalize-api.md#getrecommendations): None, not
        # invented.
        items = await self.store.decorate([i["itemId"] for i in listed], [i.get("score") for i in listed])
        # What exports recorded stays; Personalize's own metadata fills in what they did not.
        return [{**(given.get("metadata") or {}), **item} for given, item in zip(listed, items, strict=True)]
