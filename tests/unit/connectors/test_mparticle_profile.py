"""mParticle profile destination: /v2/bulkevents batches with user attributes, limits, dedup ids."""

from __future__ import annotations

import base64

import httpx
import orjson
import pytest

from connectors.destinations.mparticle_profile import MparticleProfile, MparticleProfileConfig
from hub.connector import Context, Outcome
from hub.errors import PartialFailure, RejectedError, RetryableError
from tests.fixtures.exports import deliver, export_event


class FakeMparticle:
    def __init__(self, status: int = 202, headers=None):
        self.status, self.headers = status, headers or {}
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, headers=self.headers)


def mparticle(fake: FakeMparticle, **config) -> MparticleProfile:
    settings = MparticleProfileConfig(type="mparticle_profile", api_key="key", api_secret="secret", **config)
    return MparticleProfile(settings, Context(), transport=httpx.MockTransport(fake.handler))


async def test_each_user_is_one_batch_with_string_list_attributes_and_derived_ids():
    fake = FakeMparticle()
    destination = mparticle(fake, items_attribute="recommended_items_json")
    event = export_event("u1", ("i1", "i2"), email="ann@example.com")
    await destination.send([event, export_event("u2")])
    await destination.send([event])
    request = fake.requests[0]
    assert request.url == "https://s2s.mparticle.com/v2/bulkevents"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"key:secret").decode()
    first, second = orjson.loads(request.content)
    assert first["user_identities"] == {"customer_id": "u1", "email": "ann@example.com"}
    assert second["user_identities"] == {"customer_id": "u2"}
    assert first["user_attributes"]["recommended_item_ids"] == ["i1", "i2"]
    assert orjson.loads(first["user_attributes"]["recommended_items_json"])[1]["name"] == "Wool Socks <3-pack>"
    assert first["events"][0]["data"]["event_name"] == "Recommendations Updated"
    (resent,) = orjson.loads(fake.requests[1].content)
    assert resent["source_request_id"] == first["source_request_id"] != second["source_request_id"]
    assert resent["events"][0]["data"]["source_message_id"] == first["events"][0]["data"]["source_message_id"]


async def test_at_most_100_batches_per_request():
    fake = FakeMparticle()
    settlements = await deliver(mparticle(fake, batch={"max_in_flight": 1, "max_wait_secs": 0.05}),
                                [export_event(f"u{n}") for n in range(250)])
    assert {s.outcome for s in settlements} == {Outcome.DELIVERED}
    sizes = [len(orjson.loads(r.content)) for r in fake.requests]
    assert max(sizes) <= 100 and sum(sizes) == 250


async def test_a_batch_over_128_kb_fails_alone():
    fake = FakeMparticle()
    huge = export_event("huge", [f"item-{n:05d}-{'x' * 40}" for n in range(3000)])
    with pytest.raises(PartialFailure) as failure:
        await mparticle(fake).send([huge, export_event("ok")])
    assert failure.value.rejected[0].reason == "batch_too_large" and not failure.value.retry
    assert [b["user_identities"]["customer_id"] for b in orjson.loads(fake.requests[0].content)] == ["ok"]


async def test_statuses_429_403_and_503():
    with pytest.raises(RetryableError) as throttled:
        await mparticle(FakeMparticle(429, {"Retry-After": "4"})).send([export_event("u1")])
    assert throttled.value.throttled and throttled.value.retry_after_secs == 4.0
    with pytest.raises(PartialFailure) as forbidden:
        await mparticle(FakeMparticle(403)).send([export_event("u1"), export_event("u2")])
    assert {e.reason for e in forbidden.value.rejected.values()} == {"forbidden"}
    with pytest.raises(RetryableError):
        await mparticle(FakeMparticle(503)).send([export_event("u1")])
    with pytest.raises(RejectedError):
        await mparticle(FakeMparticle(400)).send([export_event("u1")])
