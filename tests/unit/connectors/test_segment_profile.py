"""Segment profile destination: identify traits in /v1/batch, the 32 KB / 500 KB limits, deterministic messageId."""

from __future__ import annotations

import base64

import httpx
import orjson
import pytest

from connectors.destinations.segment_profile import MAX_BATCH_BYTES, SegmentProfile, SegmentProfileConfig
from hub.connector import Context, Outcome
from hub.errors import RejectedError, RetryableError
from tests.fixtures.exports import deliver, export_event


class FakeSegment:
    def __init__(self, status: int = 200, headers=None):
        self.status, self.headers = status, headers or {}
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, json={"success": self.status == 200}, headers=self.headers)


def segment(fake: FakeSegment, **config) -> SegmentProfile:
    settings = SegmentProfileConfig(type="segment_profile", write_key="wk_123", **config)
    return SegmentProfile(settings, Context(), transport=httpx.MockTransport(fake.handler))


async def test_identify_carries_items_as_traits_with_a_stable_message_id():
    fake = FakeSegment()
    event = export_event("u1", ("i3", "i1"), attributes={"plan": "pro"})
    await deliver(segment(fake), [event])
    await deliver(segment(fake), [event])  # a resend repeats the messageId: Segment drops the copy
    first, again = (orjson.loads(r.content)["batch"][0] for r in fake.requests)
    request = fake.requests[0]
    assert request.url == "https://api.segment.io/v1/batch"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"wk_123:").decode()
    assert first["type"] == "identify" and first["userId"] == "u1"
    assert first["traits"]["recommended_item_ids"] == ["i3", "i1"] and first["traits"]["plan"] == "pro"
    assert first["traits"]["recommended_items"][0] == {
        "id": "i3", "name": "Rain Shell", "price": 149.0, "url": "https://shop.example/p/i3",
        "image": "https://img.example/i3.jpg"}
    assert first["messageId"] == again["messageId"] == "weekly_email-20260105T060000:u1"


async def test_batches_stay_under_500_kb_and_messages_over_32_kb_fail_alone():
    fake = FakeSegment()
    catalog_heavy = [f"item-{n}" for n in range(60)]
    events = []
    for n in range(120):
        event = export_event(f"u{n}", catalog_heavy)
        for item in event.record["items"]:
            item["name"] = "n" * 60 + str(n)  # ~6 KB per message, 120 messages ≈ 720 KB in all
        events.append(event)
    oversized = export_event("huge", [f"x{n}" for n in range(2000)])
    settlements = await deliver(segment(fake, batch={"max_in_flight": 1}), [*events, oversized])
    assert (settlements[-1].outcome, settlements[-1].reason) == (Outcome.REJECTED, "message_too_large")
    assert {s.outcome for s in settlements[:-1]} == {Outcome.DELIVERED}
    assert len(fake.requests) >= 2 and max(len(r.content) for r in fake.requests) <= MAX_BATCH_BYTES
    sent = [m["userId"] for r in fake.requests for m in orjson.loads(r.content)["batch"]]
    assert sorted(sent) == sorted(f"u{n}" for n in range(120))


async def test_429_is_throttling_with_retry_after_and_400_is_rejected():
    with pytest.raises(RetryableError) as throttled:
        await segment(FakeSegment(429, {"Retry-After": "2"})).send([export_event("u1")])
    assert throttled.value.throttled and throttled.value.retry_after_secs == 2.0
    with pytest.raises(RejectedError) as rejected:
        await segment(FakeSegment(400)).send([export_event("u1")])
    assert rejected.value.reason == "http_400"


def test_eu_endpoint_is_configurable_and_message_ids_stay_under_100_chars():
    destination = segment(FakeSegment(), endpoint="https://events.eu1.segmentapis.com")
    event = export_event("u" * 120)
    message = orjson.loads(destination.message(event))
    assert len(message["messageId"]) < 100
    assert destination.config.endpoint == "https://events.eu1.segmentapis.com"
