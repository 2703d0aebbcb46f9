"""GET /recommendations: store, live and popular fallbacks, formats, auth and errors (in-process fakes)."""

from __future__ import annotations

import fnmatch

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from connectors.destinations.recommendation_store import RecommendationStore, RecommendationStoreConfig
from hub.connector import Context
from personalize_hub.recommendations import RecommendationsConfig
from personalize_hub.recommendations.endpoint import RecommendationsEndpoint
from tests.fixtures.exports import deliver, export_event


class FakeRedis:
    """The few redis.asyncio calls the store makes, over dicts; `down` makes every call fail."""

    def __init__(self):
        self.hashes: dict[str, dict[str, bytes]] = {}
        self.strings: dict[str, bytes] = {}
        self.ttls: dict[str, float] = {}
        self.down = False

    def _check(self):
        if self.down:
            raise ConnectionError("redis is down")

    async def hget(self, key, field):
        self._check()
        return self.hashes.get(key, {}).get(field)

    async def hmget(self, key, fields):
        self._check()
        return [self.hashes.get(key, {}).get(f) for f in fields]

    async def get(self, key):
        self._check()
        return self.strings.get(key)

    async def set(self, key, value, px=None):
        self._check()
        self.strings[key], self.ttls[key] = value, px / 1000

    def pipeline(self, transaction=False):
        return FakePipeline(self)

    def keys(self, pattern):
        return [k for k in [*self.hashes, *self.strings] if fnmatch.fnmatch(k, pattern)]

    async def aclose(self):
        pass


class FakePipeline:
    def __init__(self, redis: FakeRedis):
        self.redis, self.commands = redis, []

    def hset(self, key, field=None, value=None, mapping=None):
        self.commands.append((key, {field: value} if mapping is None else mapping))

    def expire(self, key, secs):
        self.redis.ttls[key] = secs

    async def execute(self):
        self.redis._check()
        for key, mapping in self.commands:
            self.redis.hashes.setdefault(key, {}).update(mapping)


class FakeRuntime:
    def __init__(self, answers=None, error: Exception | None = None):
        self.answers = answers or {}
        self.error = error
        self.calls: list[dict] = []

    async def get_recommendations(self, **params):
        self.calls.append(params)
        if self.error:
            raise self.error
        return {"itemList": self.answers.get(params["campaignArn"], [])}


USER_CAMPAIGN = "arn:aws:personalize:us-east-1:000000000000:campaign/user-recs"
POPULAR_CAMPAIGN = "arn:aws:personalize:us-east-1:000000000000:campaign/popular"


def client(redis: FakeRedis, runtime: FakeRuntime | None = None, **config) -> httpx.AsyncClient:
    settings = RecommendationsConfig(enabled=True, redis_url="redis://fake", **config)

    async def runtime_client():
        return runtime

    endpoint = RecommendationsEndpoint(settings, redis, runtime_client if runtime else None)
    app = Starlette(routes=endpoint.routes())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")


async def exported(redis: FakeRedis, *events, variant: str = "default") -> None:
    config = RecommendationStoreConfig(type="recommendation_store", redis_url="redis://fake", variant=variant)
    settlements = await deliver(RecommendationStore(config, Context(), redis=redis), list(events))
    assert all(s.outcome.value == "delivered" for s in settlements)


async def test_store_hit_is_the_braze_array_sliced_to_num_results():
    redis = FakeRedis()
    await exported(redis, export_event("u1", ("i3", "i1", "i2")))
    async with client(redis) as http:
        answer = await http.get("/recommendations", params={"user_id": "u1", "num_results": 2})
    assert answer.status_code == 200 and answer.headers["cache-control"] == "private, max-age=300"
    assert answer.json() == [
        {"id": "i3", "name": "Rain Shell", "price": 149.0, "url": "https://shop.example/p/i3",
         "image": "https://img.example/i3.jpg"},
        {"id": "i1", "name": "Trail Runner 2", "price": 89.9, "url": "https://shop.example/p/i1",
         "image": "https://img.example/i1.jpg"},
    ]


async def test_object_format_says_where_items_came_from():
    redis = FakeRedis()
    await exported(redis, export_event("u1"))
    async with client(redis) as http:
        hit = (await http.get("/recommendations?user_id=u1&format=object")).json()
        miss = await http.get("/recommendations?user_id=nobody&format=object")
        miss_array = await http.get("/recommendations?user_id=nobody")
    assert hit["source"] == "store" and hit["user_id"] == "u1" and len(hit["items"]) == 3
    assert hit["job"] == "weekly_email" and hit["run_id"] == "weekly_email-20260105T060000"
    assert miss.status_code == 200 and miss.json()["items"] == [] and miss.json()["source"] == "none"
    # unknown user: 200, not 404 (docs/reference/braze.md#connected-content)
    assert miss_array.status_code == 200 and miss_array.json() == []


async def test_live_fallback_is_decorated_from_exported_metadata_and_cached():
    redis = FakeRedis()
    await exported(redis, export_event("u1", ("i1", "i2")))  # teaches the store i1/i2 metadata
    runtime = FakeRuntime({USER_CAMPAIGN: [{"itemId": "i2", "score": 0.7}, {"itemId": "new", "score": 0.2}]})
    async with client(redis, runtime, campaign_arn=USER_CAMPAIGN, cache_ttl_secs=60) as http:
        first = await http.get("/recommendations?user_id=u9&num_results=2&format=object")
        again = await http.get("/recommendations?user_id=u9&num_results=2&format=object")
    assert first.json()["source"] == "live" and first.json() == again.json()
    assert first.json()["items"] == [
        {"id": "i2", "name": "Wool Socks <3-pack>", "price": 12.5, "url": "https://shop.example/p/i2",
         "image": "https://img.example/i2.jpg", "score": 0.7},
        {"id": "new", "score": 0.2},  # never exported: its id only, nothing invented
    ]
    assert runtime.calls == [{"campaignArn": USER_CAMPAIGN, "numResults": 2, "userId": "u9"}]
    assert list(redis.ttls.values())[-1] == 60


async def test_empty_live_answer_falls_back_to_popular_items_without_a_user():
    redis = FakeRedis()
    runtime = FakeRuntime({POPULAR_CAMPAIGN: [{"itemId": "top1"}, {"itemId": "top2"}]})
    async with client(redis, runtime, campaign_arn=USER_CAMPAIGN, popular_campaign_arn=POPULAR_CAMPAIGN) as http:
        answer = (await http.get("/recommendations?user_id=cold&format=object")).json()
    assert answer["source"] == "popular" and [i["id"] for i in answer["items"]] == ["top1", "top2"]
    assert runtime.calls[1] == {"campaignArn": POPULAR_CAMPAIGN, "numResults": 10}


async def test_live_failure_without_another_answer_is_503_so_braze_retries():
    runtime = FakeRuntime(error=TimeoutError("slow"))
    async with client(FakeRedis(), runtime, campaign_arn=USER_CAMPAIGN) as http:
        answer = await http.get("/recommendations?user_id=u1")
    assert answer.status_code == 503 and answer.json()["error"] == "recommendations_unavailable"


async def test_filters_select_the_store_variant_or_pass_the_arn_live():
    redis = FakeRedis()
    await exported(redis, export_event("u1", ("i1",)), variant="in_stock")
    runtime = FakeRuntime({USER_CAMPAIGN: [{"itemId": "i5", "score": 0.5}]})
    filters = {"in_stock": "arn:aws:personalize:us-east-1:000000000000:filter/in-stock"}
    async with client(redis, runtime, campaign_arn=USER_CAMPAIGN, filters=filters) as http:
        stored = (await http.get("/recommendations?user_id=u1&filter=in_stock&format=object")).json()
        unfiltered = (await http.get("/recommendations?user_id=u1&format=object")).json()
        live = (await http.get("/recommendations?user_id=u2&filter=in_stock&format=object")).json()
        unknown = await http.get("/recommendations?user_id=u1&filter=nope")
    assert (stored["source"], [i["id"] for i in stored["items"]]) == ("store", ["i1"])
    assert unfiltered["source"] == "live"  # the default variant was never exported for u1
    assert live["source"] == "live" and runtime.calls[-1]["filterArn"] == filters["in_stock"]
    assert unknown.status_code == 400 and unknown.json()["error"] == "unknown_filter"


@pytest.mark.parametrize(("query", "reason"), [
    ("", "invalid_user_id"), ("user_id=" + "u" * 257, "invalid_user_id"),
    ("user_id=u1&num_results=0", "invalid_num_results"), ("user_id=u1&num_results=abc", "invalid_num_results"),
    ("user_id=u1&num_results=101", "invalid_num_results"), ("user_id=u1&format=xml", "invalid_format"),
    ("user_id=u1&num_results=%C2%B2", "invalid_num_results"),  # "²": str.isdigit() says yes, int() says no
])
async def test_bad_parameters_are_400_with_a_reason(query, reason):
    async with client(FakeRedis()) as http:
        answer = await http.get(f"/recommendations?{query}")
    assert answer.status_code == 400 and answer.json()["error"] == reason


async def test_api_keys_by_header_or_bearer():
    redis = FakeRedis()
    async with client(redis, api_keys=["old-key", "new-key"]) as http:
        missing = await http.get("/recommendations?user_id=u1")
        wrong = await http.get("/recommendations?user_id=u1", headers={"X-Api-Key": "new-kex"})
        header = await http.get("/recommendations?user_id=u1", headers={"X-Api-Key": "new-key"})
        bearer = await http.get("/recommendations?user_id=u1", headers={"Authorization": "Bearer old-key"})
    assert (missing.status_code, wrong.status_code, header.status_code, bearer.status_code) == (401, 401, 200, 200)


async def test_store_outage_is_503():
    redis = FakeRedis()
    redis.down = True
    async with client(redis) as http:
        answer = await http.get("/recommendations?user_id=u1")
    assert answer.status_code == 503 and answer.json()["error"] == "store_unavailable"


async def test_store_writes_keep_rank_order_and_ttl():
    redis = FakeRedis()
    config = RecommendationStoreConfig(type="recommendation_store", redis_url="redis://fake", ttl_secs=3600,
                                       include_score=True, item_fields=["name"])
    await deliver(RecommendationStore(config, Context(), redis=redis), [export_event("u1", ("i2", "i1"))])
    entry = orjson.loads(redis.hashes["hub:recs:user:u1"]["default"])
    assert entry["items"] == [{"id": "i2", "name": "Wool Socks <3-pack>", "score": 0.9},
                              {"id": "i1", "name": "Trail Runner 2", "score": 0.8}]
    assert redis.ttls["hub:recs:user:u1"] == 3600
    assert orjson.loads(redis.hashes["hub:recs:items"]["i1"]) == {"id": "i1", "name": "Trail Runner 2"}
