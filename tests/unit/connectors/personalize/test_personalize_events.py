"""personalize_events: one (sessionId, userId) per call, order kept, bad members isolated, config problems held."""

from __future__ import annotations

import asyncio
import logging

import pytest

from connectors.destinations.personalize.errors import ServiceMisconfigured
from connectors.destinations.personalize.events import PersonalizeEvents, PersonalizeEventsConfig
from personalize_hub.config import parse_config
from hub.connector import Context, Outcome
from hub.delivery.retry import RetryPolicy
from hub.delivery.runner import DestinationRunner
from hub.delivery.dead_letter import DeadLetter
from hub.errors import ConfigError, RejectedError, RetryableError
from hub.events import Event, EventKind, SourceRef
from hub.pipeline import Pipeline
from hub.telemetry import RepeatFilter
from tests.unit.hub.fakes import ListSink

from .conftest import FakeIngestApi, interaction

FAST = RetryPolicy(base_delay_secs=0.001, max_delay_secs=0.002, max_attempts=4, max_elapsed_secs=5)


def events_destination(api: FakeIngestApi, **config) -> PersonalizeEvents:
    destination = PersonalizeEvents(
        PersonalizeEventsConfig(type="personalize_events", tracking_id="tracker-1", **config), Context()
    )
    destination._api = api  # the request path is swapped at its interface; wire tests cover the real ones
    return destination


async def deliver(destination, events, retry=FAST):
    policy = destination.config.batch_policy()
    runner = DestinationRunner(destination, policy, retry)
    await runner.start()
    futures = [await runner.submit(e) for e in events]
    settlements = await asyncio.wait_for(asyncio.gather(*futures), 10)
    await runner.close()
    return settlements


def test_partition_key_is_the_session_user_pair():
    destination = events_destination(FakeIngestApi())
    key = destination.partition_key
    assert key(interaction("a", session="s", user="u")) == key(interaction("b", session="s", user="u"))
    assert key(interaction("a", session="s", user=None)) != key(interaction("b", session="s", user="u"))
    assert key(interaction("a", session="ab", user="c")) != key(interaction("b", session="a", user="bc"))
    assert key(interaction("a", session="s", user=None)) == key(interaction("b", session="s", user=""))


async def test_each_call_carries_one_session_in_order_and_at_most_ten_events():
    api = FakeIngestApi()
    sessions = [("s1", "u1"), ("s2", None), ("s3", "u3")]
    events = [interaction(f"{s}-{i}", session=s, user=u, sent_at=1_700_000_000 + i)
              for i in range(25) for s, u in sessions]
    settlements = await deliver(events_destination(api, batch={"max_wait_secs": 0.01}), events)

    assert {s.outcome for s in settlements} == {Outcome.DELIVERED}
    sent: dict[str, list[str]] = {}
    for operation, params in api.calls:
        assert operation == "PutEvents" and params["trackingId"] == "tracker-1"
        assert 1 <= len(params["eventList"]) <= 10
        session = params["sessionId"]
        assert all(e["eventId"].startswith(f"{session}-") for e in params["eventList"])
        assert ("userId" in params) == (session != "s2")  # anonymous: userId omitted, never null
        sent.setdefault(session, []).extend(e["eventId"] for e in params["eventList"])
    assert sent == {s: [f"{s}-{i}" for i in range(25)] for s, _ in sessions}
    assert len(api.calls) == 9  # 3 sessions x ceil(25 / 10): batches fill up


async def test_request_members_are_in_botocore_order_and_nothing_absent_is_sent_as_null():
    api = FakeIngestApi()
    destination = events_destination(api)
    viewed = Event(kind=EventKind.INTERACTION, source=SourceRef(source_id="web", message_id="m1"), name="Product Viewed",
                   call="track", timestamp=1_704_067_200.5, user_id="u1", session_id="s1",
                   properties={"product_id": "i1", "price": None, "recommendation_id": "RID-1"})
    ((unit,),) = destination.encode([viewed])
    await deliver(destination, [unit])
    (_, params), = api.calls
    assert list(params) == ["trackingId", "userId", "sessionId", "eventList"]
    assert params["eventList"] == [{"eventId": "m1", "eventType": "Product Viewed", "sentAt": 1_704_067_200.5,
                                    "itemId": "i1", "recommendationId": "RID-1"}]


async def test_one_invalid_event_in_ten_is_rejected_and_nine_delivered():
    def service(operation, params, call):
        if any(e["eventId"] == "m3" for e in params["eventList"]):
            return RejectedError("invalid_input", "recommendationId is longer than 40")
        return None

    api = FakeIngestApi(service)
    settlements = await deliver(events_destination(api), [interaction(f"m{i}") for i in range(10)])
    outcomes = [s.outcome for s in settlements]
    assert outcomes == [Outcome.DELIVERED] * 3 + [Outcome.REJECTED] + [Outcome.DELIVERED] * 6
    assert settlements[3].reason == "invalid_input"
    assert settlements[3].message == "recommendationId is longer than 40"
    delivered = [e["eventId"] for _, p in api.calls if not any(x["eventId"] == "m3" for x in p["eventList"])
                 for e in p["eventList"]]
    assert delivered == [f"m{i}" for i in range(10) if i != 3]  # bisection keeps the session's order


async def test_throttling_is_retried_and_reported_as_throttled():
    api = FakeIngestApi(lambda op, params, call: RetryableError("429", throttled=True) if call <= 2 else None)
    settlements = await deliver(events_destination(api), [interaction("m1"), interaction("m2")])
    assert [s.outcome for s in settlements] == [Outcome.DELIVERED] * 2
    assert len(api.calls) == 3


async def test_unknown_tracker_holds_events_for_retry_and_logs_loudly(caplog):
    api = FakeIngestApi(lambda op, params, call: ServiceMisconfigured("ResourceNotFoundException: no tracker"))
    caplog.handler.addFilter(RepeatFilter())  # what setup_logging gives every handler of a hub process
    with caplog.at_level(logging.ERROR):
        settlements = await deliver(events_destination(api), [interaction(f"m{i}") for i in range(3)])
    assert {s.outcome for s in settlements} == {Outcome.RETRY}  # not rejected: nothing is dead-lettered
    assert len(api.calls) == FAST.max_attempts  # not bisected either
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "tracker-1" in errors[0].getMessage()


async def test_members_that_cannot_be_encoded_are_dead_lettered_beside_good_ones_without_reaching_the_call():
    api = FakeIngestApi()
    destination = events_destination(api)
    runner = DestinationRunner(destination, destination.config.batch_policy(), FAST)
    await runner.start()
    sink = ListSink()
    pipeline = Pipeline([], [runner], DeadLetter(sink, FAST))

    def viewed(message_id: str, session: str | None = "s1", **properties) -> Event:
        return Event(kind=EventKind.INTERACTION, source=SourceRef(source_id="web", message_id=message_id),
                     name="Product Viewed", call="track", timestamp=1_704_067_200.0, user_id="u1",
                     session_id=session, properties={"product_id": "p1", **properties}, raw={"messageId": message_id})

    report = await pipeline.emit([viewed("m0"), viewed("m1", product_id="null"), viewed("m2", session=None),
                                  viewed("m3")])
    await runner.close()
    assert report.outcomes == [Outcome.DELIVERED, Outcome.REJECTED, Outcome.REJECTED, Outcome.DELIVERED]
    assert [(r["source"]["message_id"], r["reason"], r["destination"]) for r in sink.records] == [
        ("m1", "missing_item_id", "personalize_events"), ("m2", "missing_session_id", "personalize_events")]
    assert sink.records[0]["payload"] == {"messageId": "m1"}  # the input as received, for `hub replay`
    assert [e["eventId"] for _, params in api.calls for e in params["eventList"]] == ["m0", "m3"]


def test_api_limits_cite_the_quota_and_config_may_only_lower_them():
    limits = PersonalizeEventsConfig.api_limits
    assert (limits.max_events, limits.max_requests_per_sec) == (10, 1000)
    with pytest.raises(ConfigError, match="exceeds the API limit 10"):
        parse_config({"destinations": [{"type": "personalize_events", "tracking_id": "t",
                                        "batch": {"max_events": 11}}]}, {})


def test_tracking_id_comes_from_config_or_environment(monkeypatch):
    monkeypatch.setenv("PERSONALIZE_TRACKING_ID", "from-env")
    assert PersonalizeEventsConfig(type="personalize_events").tracking_id == "from-env"
    assert PersonalizeEventsConfig(type="personalize_events", tracking_id="given").tracking_id == "given"
    monkeypatch.delenv("PERSONALIZE_TRACKING_ID")
    with pytest.raises(ConfigError, match="tracking_id is required"):
        parse_config({"destinations": [{"type": "personalize_events"}]}, {})
