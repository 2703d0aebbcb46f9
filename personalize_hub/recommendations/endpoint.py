"""`GET /recommendations?user_id=…&num_results=…&filter=…&format=array|object` for Braze Connected Content.

The default answer is a top-level array `[{"id", "name", "price", "url", "image", …}]`, the shape
Braze templates index (`{{recs[0].name}}`). `format=object` answers `{"user_id", "items", "source",
"job", "run_id", "generated_at"}` instead: Braze adds `__http_status_code__` only to objects, so a
template can `abort_message` on an error or an empty list (docs/reference/braze.md#connected-content). `source` says
where the items came from: store, live, popular or none. An unknown user gets 200 and no items (not
404), so the template decides what to show; 503 means try again (Braze `:retry`).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.aws import AwsClients
from connectors.destinations.recommendation_store.store import DEFAULT_VARIANT, RecommendationStore
from hub.connector import Context
from hub.redis_connection import async_client
from personalize_hub.recommendations.config import RecommendationsConfig
from personalize_hub.recommendations.live import LiveRecommender, LiveUnavailable, RuntimeClient

log = logging.getLogger(__name__)

MAX_USER_ID_CHARS = 256  # GetRecommendations userId ≤ 256 (docs/reference/personalize-api.md#getrecommendations)
JSON = "application/json"


class BadRequest(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


class RecommendationsEndpoint:
    """Serves precomputed recommendations, with the live and popular fallbacks the config names."""

    def __init__(self, config: RecommendationsConfig, redis: Any, runtime_client: RuntimeClient | None = None):
        self.config = config
        self.redis = redis
        self.store = RecommendationStore(redis, config.key_prefix)
        self.live = LiveRecommender(config, self.store, runtime_client or _no_runtime_client)
        self._keys = [key.get_secret_value().encode() for key in config.api_keys]
        self._cache_control = f"private, max-age={config.cache_max_age_secs}"

    def routes(self) -> list[Route]:
        return [Route(self.config.path, self.handle, methods=["GET"])]

    async def close(self) -> None:
        await self.redis.aclose()

    async def handle(self, request: Request) -> Response:
        if self._keys and not self._authorised(request):
            return _error(401, "unauthorized", "send a configured key as X-Api-Key or Authorization: Bearer")
        try:
            user_id, num_results, filter_name, as_object = self._params(request)
        except BadRequest as err:
            return _error(400, err.reason, err.message)
        try:
            entry = await self.store.read(user_id, filter_name or DEFAULT_VARIANT)
            if entry is not None:
                items, source = entry["items"][:num_results], "store"
            else:
                entry = {}
                items, source = await self._fallback(user_id, num_results, filter_name)
        except LiveUnavailable as err:
            return _error(503, "recommendations_unavailable", str(err))
        except Exception as err:  # Redis down: the template should retry, not render nothing
            log.warning("recommendations: store unavailable: %s", err)
            return _error(503, "store_unavailable", "the recommendation store is unavailable; retry later")
        body: Any = items
        if as_object:
            body = {"user_id": user_id, "items": items, "source": source, "job": entry.get("job"),
                    "run_id": entry.get("runId"), "generated_at": entry.get("generatedAt")}
        return Response(orjson.dumps(body), media_type=JSON, headers={"Cache-Control": self._cache_control})

    def _authorised(self, request: Request) -> bool:
        given = request.headers.get("x-api-key")
        if given is None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            given = token if scheme.lower() == "bearer" else ""
        given_bytes = given.encode()
        # Every key is compared, each in constant time, so timing says neither which key nor how much matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(key, given_bytes)
        return matched

    def _params(self, request: Request) -> tuple[str, int, str | None, bool]:
        query = request.query_params
        user_id = query.get("user_id", "")
        if not user_id or len(user_id) > MAX_USER_ID_CHARS:
            raise BadRequest("invalid_user_id", f"user_id is required, 1..{MAX_USER_ID_CHARS} characters")
        raw_num = query.get("num_results")
        num_results = self.config.default_num_results
        if raw_num is not None:
            if not (raw_num.isascii() and raw_num.isdigit()) or not 1 <= int(raw_num) <= self.config.max_num_results:
                raise BadRequest("invalid_num_results", f"num_results must be 1..{self.config.max_num_results}")
            num_results = int(raw_num)
        filter_name = query.get("filter") or None
        if filter_name is not None and filter_name not in self.config.filters:
            known = ", ".join(sorted(self.config.filters)) or "none configured"
            raise BadRequest("unknown_filter", f"filter {filter_name!r} is not configured ({known})")
        format_ = query.get("format", "array")
        if format_ not in ("array", "object"):
            raise BadRequest("invalid_format", "format must be array or object")
        return user_id, num_results, filter_name, format_ == "object"

    async def _fallback(self, user_id: str, num_results: int, filter_name: str | None) -> tuple[list[Any], str]:
        """Live per-user recommendations, then popular items; LiveUnavailable only if one failed and none answered."""
        filter_arn = self.config.filters.get(filter_name) if filter_name else None
        failure: LiveUnavailable | None = None
        if self.live.has_user_campaign:
            try:
                items = await self.live.for_user(user_id, num_results, filter_arn)
                if items:
                    return items, "live"
            except LiveUnavailable as err:
                failure = err
        if self.live.has_popular_campaign:
            try:
                return await self.live.popular(user_id, num_results, filter_arn), "popular"
            except LiveUnavailable as err:
                failure = err
        if failure is not None:
            raise failure
        return [], "none"


async def _no_runtime_client() -> Any:
    raise RuntimeError("no AWS clients: live recommendations need the hub's context")


def _error(status: int, reason: str, message: str) -> Response:
    return Response(orjson.dumps({"error": reason, "message": message}), status_code=status, media_type=JSON)


def mount(config: Any, context: Context) -> RecommendationsEndpoint | None:
    """The endpoint the hub config asks for (`recommendations.enabled`), or None."""
    settings: RecommendationsConfig = config.recommendations
    if not settings.enabled:
        return None
    assert settings.redis_url is not None  # checked by RecommendationsConfig
    aws = context.resources.get(AwsClients)

    async def runtime_client() -> Any:
        if aws is None:
            return await _no_runtime_client()
        return await aws.client("personalize-runtime")

    # A bounded pool: a burst queues for a connection instead of opening one per request.
    client = async_client(settings.redis_url, max_connections=settings.redis_max_connections,
                          pool_wait_secs=settings.live_timeout_secs)
    return RecommendationsEndpoint(settings, client, runtime_client)  # owns the pool
