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
from hub.errors import ConfigError, RejectedError, RetryableError
from hub.telemetry import RepeatFilter

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


async def test_request_members_are_in_botocore_order_and_nulls_dropped():
    api = FakeIngestApi()
    await deliver(events_destination(api), [interaction("m1", eventValue=None, recommendationId="RID-1")])
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


async def test_members_that_cannot_be_sent_are_rejected_beside_good_ones():
    api = FakeIngestApi()
    unmapped = interaction("m1")
    unmapped.record = None
    events = [interaction("m0"), unmapped, interaction("m2")]
    settlements = await deliver(events_destination(api), events)
    assert [s.outcome for s in settlements] == [Outcome.DELIVERED, Outcome.REJECTED, Outcome.DELIVERED]
    assert settlements[1].reason == "not_mapped"
    assert [e["eventId"] for e in api.calls[0][1]["eventList"]] == ["m0", "m2"]


async def test_interactions_without_session_are_rejected_without_a_call():
    api = FakeIngestApi()
    settlements = await deliver(events_destination(api), [interaction("m0", session=None)] * 3)
    assert {(s.outcome, s.reason) for s in settlements} == {(Outcome.REJECTED, "missing_session_id")}
    assert api.calls == []


async def test_a_rejected_call_beside_an_invalid_member_still_isolates_the_bad_one():
    def service(operation, params, call):
        bad = any(e["eventId"] == "m2" for e in params["eventList"])
        return RejectedError("invalid_input", "bad m2") if bad else None

    unmapped = interaction("m1")
    unmapped.record = None
    api = FakeIngestApi(service)
    settlements = await deliver(events_destination(api), [interaction("m0"), unmapped, interaction("m2"),
                                                          interaction("m3")])
    assert [(s.outcome, s.reason) for s in settlements] == [
        (Outcome.DELIVERED, None), (Outcome.REJECTED, "not_mapped"), (Outcome.REJECTED, "invalid_input"),
        (Outcome.DELIVERED, None)]


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
