"""Braze destination: request shapes, documented limits, and status classification (httpx.MockTransport)."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
from pydantic import ValidationError

from connectors.destinations.braze import BrazeUsers, BrazeUsersConfig
from hub.connector import Context, Outcome
from hub.errors import PartialFailure, RejectedError, RetryableError
from tests.fixtures.exports import deliver, export_event


class FakeBraze:
    """Answers Braze requests from a per-call script; records every request body."""

    def __init__(self, answer=None):
        self.requests: list[tuple[str, dict, httpx.Headers]] = []
        self.answer = answer or (lambda path, body, call: httpx.Response(201, json={"message": "success"}))

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        self.requests.append((request.url.path, body, request.headers))
        return self.answer(request.url.path, body, len(self.requests))


def braze(fake: FakeBraze, **config) -> BrazeUsers:
    settings = BrazeUsersConfig(type="braze", rest_url="https://rest.iad-01.braze.com", api_key="secret-key", **config)
    return BrazeUsers(settings, Context(), transport=httpx.MockTransport(fake.handler))


async def test_track_writes_items_with_metadata_and_ids_as_custom_attributes():
    fake = FakeBraze()
    settlements = await deliver(braze(fake), [export_event("u1", ("i1", "i2"), attributes={"tier": "gold"})])
    assert [s.outcome for s in settlements] == [Outcome.DELIVERED]
    path, body, headers = fake.requests[0]
    assert path == "/users/track" and headers["authorization"] == "Bearer secret-key"
    (attributes,) = body["attributes"]
    assert attributes["external_id"] == "u1" and attributes["_update_existing_only"] is True
    assert attributes["tier"] == "gold"
    assert attributes["recommended_item_ids"] == ["i1", "i2"]
    assert attributes["recommended_items"] == [
        {"id": "i1", "name": "Trail Runner 2", "price": 89.9, "url": "https://shop.example/p/i1",
         "image": "https://img.example/i1.jpg"},
        {"id": "i2", "name": "Wool Socks <3-pack>", "price": 12.5, "url": "https://shop.example/p/i2",
         "image": "https://img.example/i2.jpg"},
    ]


async def test_track_requests_hold_at_most_75_objects_and_every_user_arrives():
    fake = FakeBraze()
    users = [f"u{n}" for n in range(400)]
    settlements = await deliver(braze(fake), [export_event(u) for u in users])
    assert {s.outcome for s in settlements} == {Outcome.DELIVERED}
    sizes = [len(body["attributes"]) for _, body, _ in fake.requests]
    assert max(sizes) <= 75 and sum(sizes) == 400
    assert sorted(a["external_id"] for _, b, _ in fake.requests for a in b["attributes"]) == sorted(users)


async def test_non_fatal_errors_reject_only_the_named_objects():
    def answer(path, body, call):
        bad = [i for i, a in enumerate(body["attributes"]) if a["external_id"] == "u2"]
        errors = [{"type": "'external_id' is invalid", "input_array": "attributes", "index": i} for i in bad]
        return httpx.Response(201, json={"message": "success", "errors": errors})

    fake = FakeBraze(answer)
    settlements = await deliver(braze(fake, batch={"max_wait_secs": 0.05, "max_in_flight": 1}), [export_event(f"u{n}") for n in range(5)])
    outcomes = {f"u{n}": s for n, s in enumerate(settlements)}
    assert outcomes["u2"].outcome is Outcome.REJECTED and outcomes["u2"].reason == "braze_invalid_object"
    assert {s.outcome for u, s in outcomes.items() if u != "u2"} == {Outcome.DELIVERED}
    assert len(fake.requests) == 1  # a partial success is not resent


async def test_429_is_throttling_that_waits_until_the_rate_limit_reset():
    reset = int(time.time()) + 7
    fake = FakeBraze(lambda path, body, call: httpx.Response(429, headers={"X-RateLimit-Reset": str(reset)}))
    destination = braze(fake)
    with pytest.raises(PartialFailure) as failure:
        await destination.send([export_event("u1"), export_event("u2")])
    errors = list(failure.value.retry.values())
    assert len(errors) == 2 and all(e.throttled for e in errors)
    assert 5 <= errors[0].retry_after_secs <= 7


async def test_throttled_batch_is_delivered_on_a_later_attempt():
    fake = FakeBraze(lambda path, body, call: httpx.Response(429, headers={"Retry-After": "0"}) if call == 1
                     else httpx.Response(201, json={"message": "success"}))
    settlements = await deliver(braze(fake), [export_event("u1")])
    assert settlements[0].outcome is Outcome.DELIVERED and len(fake.requests) == 2


async def test_bad_key_rejects_the_whole_batch_in_one_request():
    fake = FakeBraze(lambda path, body, call: httpx.Response(401, json={"message": "Invalid API Key"}))
    settlements = await deliver(braze(fake, batch={"max_wait_secs": 0.05, "max_in_flight": 1}), [export_event(f"u{n}") for n in range(10)])
    assert {(s.outcome, s.reason) for s in settlements} == {(Outcome.REJECTED, "unauthorized")}
    assert len(fake.requests) == 1  # no bisecting a batch no split can fix


async def test_a_400_is_bisected_down_to_the_member_braze_refuses():
    def answer(path, body, call):
        if any(a["external_id"] == "u3" for a in body["attributes"]):
            return httpx.Response(400, json={"message": "Invalid attribute"})
        return httpx.Response(201, json={"message": "success"})

    settlements = await deliver(braze(FakeBraze(answer), batch={"max_wait_secs": 0.05, "max_in_flight": 1}),
                                [export_event(f"u{n}") for n in range(8)])
    rejected = [n for n, s in enumerate(settlements) if s.outcome is Outcome.REJECTED]
    assert rejected == [3] and settlements[3].reason == "http_400"


async def test_maintenance_queued_answer_counts_as_delivered():
    fake = FakeBraze(lambda path, body, call: httpx.Response(202, json={"message": "queued"}))
    assert (await deliver(braze(fake), [export_event("u1")]))[0].outcome is Outcome.DELIVERED


async def test_oversized_or_overlong_values_fail_alone():
    huge = {"i1": {"name": "x" * 200, "blurb": "y" * 200}}
    many = [f"s{n}" for n in range(400)]
    big = export_event("big", many, record=None)
    big.record["items"] = [{"itemId": i, **huge["i1"]} for i in many]  # ~160 KB of attributes
    long_url = export_event("long")
    long_url.record["items"][0]["url"] = "https://shop.example/" + "p" * 300
    spaced = export_event("spaced", attributes={"first name": "Ann"})
    fake = FakeBraze()
    with pytest.raises(PartialFailure) as failure:
        await braze(fake).send([big, export_event("ok"), long_url, spaced])
    assert failure.value.rejected[0].reason == "properties_too_large"
    assert failure.value.rejected[2].reason == "value_too_long"
    assert failure.value.rejected[3].reason == "invalid_attribute_name"
    assert [a["external_id"] for a in fake.requests[0][1]["attributes"]] == ["ok"]


async def test_a_record_without_items_is_rejected_with_its_reason():
    fake = FakeBraze()
    with pytest.raises(RejectedError) as failure:
        await braze(fake).send([export_event("u1", record={"userId": "u1"})])
    assert failure.value.reason == "invalid_export_record" and "items" in failure.value.message
    assert fake.requests == []


async def test_campaign_mode_triggers_a_send_with_trigger_properties_50_per_request():
    fake = FakeBraze()
    destination = braze(fake, mode="campaign", campaign_id="cmp-1")
    assert destination.idempotent is False and braze(fake).idempotent is True
    assert destination.config.batch_policy().max_events == 50
    settlements = await deliver(destination, [export_event(f"u{n}") for n in range(120)])
    assert {s.outcome for s in settlements} == {Outcome.DELIVERED}
    assert {path for path, _, _ in fake.requests} == {"/campaigns/trigger/send"}
    assert max(len(b["recipients"]) for _, b, _ in fake.requests) <= 50
    recipient = fake.requests[0][1]["recipients"][0]
    assert fake.requests[0][1]["campaign_id"] == "cmp-1"
    assert recipient["send_to_existing_only"] is True and "attributes" not in recipient
    assert recipient["trigger_properties"]["recommended_items"][0]["id"] == "i1"


async def test_canvas_mode_uses_entry_properties_and_may_write_attributes_first():
    fake = FakeBraze()
    await deliver(braze(fake, mode="canvas", canvas_id="cv-1", canvas_properties_key="context",
                        attributes_with_send=True), [export_event("u1")])
    path, body, _ = fake.requests[0]
    assert path == "/canvas/trigger/send" and body["canvas_id"] == "cv-1"
    recipient = body["recipients"][0]
    assert recipient["context"]["recommended_item_ids"] == ["i1", "i2", "i3"]
    assert recipient["attributes"] == recipient["context"]


@pytest.mark.parametrize(("status", "outcome", "reason"), [
    (500, Outcome.REJECTED, "delivery_unknown"),  # may have been sent: never resent blindly
    (504, Outcome.REJECTED, "delivery_unknown"),
])
async def test_sends_are_not_repeated_after_an_ambiguous_5xx(status, outcome, reason):
    fake = FakeBraze(lambda path, body, call: httpx.Response(status))
    (settlement,) = await deliver(braze(fake, mode="campaign", campaign_id="c"), [export_event("u1")])
    assert (settlement.outcome, settlement.reason) == (outcome, reason) and len(fake.requests) == 1


async def test_sends_are_retried_after_a_503_and_track_after_any_5xx():
    answers = iter([httpx.Response(503), httpx.Response(201, json={"message": "success"})])
    fake = FakeBraze(lambda path, body, call: next(answers))
    (settlement,) = await deliver(braze(fake, mode="campaign", campaign_id="c"), [export_event("u1")])
    assert settlement.outcome is Outcome.DELIVERED and len(fake.requests) == 2
    answers_track = iter([httpx.Response(500), httpx.Response(201, json={"message": "success"})])
    fake = FakeBraze(lambda path, body, call: next(answers_track))
    assert (await deliver(braze(fake), [export_event("u1")]))[0].outcome is Outcome.DELIVERED


async def test_transport_errors_retry_unless_a_send_may_have_arrived():
    def timeout(request):
        raise httpx.ReadTimeout("no answer", request=request)

    def refused(request):
        raise httpx.ConnectError("refused", request=request)

    send = BrazeUsers(BrazeUsersConfig(type="braze", rest_url="https://b", api_key="k", mode="campaign",
                                       campaign_id="c"), Context(), transport=httpx.MockTransport(timeout))
    with pytest.raises(RejectedError) as unknown:
        await send.send([export_event("u1")])
    assert unknown.value.reason == "delivery_unknown"
    track = BrazeUsers(BrazeUsersConfig(type="braze", rest_url="https://b", api_key="k"), Context(),
                       transport=httpx.MockTransport(timeout))
    with pytest.raises(RetryableError):
        await track.send([export_event("u1")])
    send._transport = httpx.MockTransport(refused)
    await send.close()
    with pytest.raises(RetryableError):
        await send.send([export_event("u1")])


def test_config_checks_mode_ids_trigger_limits_and_key(monkeypatch):
    base = {"type": "braze", "rest_url": "https://b", "api_key": "k"}
    with pytest.raises(ValidationError, match="campaign_id"):
        BrazeUsersConfig(**base, mode="campaign")
    with pytest.raises(ValidationError, match="trigger/send limit 50"):
        BrazeUsersConfig(**base, mode="canvas", canvas_id="c", batch={"max_events": 60})
    with pytest.raises(ValidationError, match="exceeds the API limit 75"):
        BrazeUsersConfig(**base, batch={"max_events": 76})
    with pytest.raises(ValidationError, match="without spaces"):
        BrazeUsersConfig(**base, items_attribute="recommended items")
    monkeypatch.delenv("BRAZE_API_KEY", raising=False)
    with pytest.raises(ValidationError, match="api_key\n.*empty or whitespace"):
        BrazeUsersConfig(type="braze", rest_url="https://b")
    monkeypatch.setenv("BRAZE_API_KEY", "from-env")
    assert BrazeUsersConfig(type="braze", rest_url="https://b").api_key.get_secret_value() == "from-env"


async def test_items_reused_across_users_are_encoded_as_each_user_carries_them():
    # The workers hand every user the same metadata objects of an item (workers/outputs.py): its encoded
    # form is reused, but only while the objects are the same ones; equal-but-different values (1 vs
    # True) or other keys are shaped afresh.
    shared = {"name": "Trail Runner 2", "price": 89.9, "url": "https://shop.example/p/i1"}
    other = {"name": "Trail Runner 3", "price": 1, "url": "https://shop.example/p/i1", "image": "https://img/i1.jpg"}
    records = [
        [{"itemId": "i1", "score": 0.9, **shared}],
        [{"itemId": "i1", "score": 0.5, **shared}],  # same objects, another score
        [{"itemId": "i1", **shared, "image": "https://img/i1.jpg"}],  # as many keys: an image, no score
        [{"itemId": "i1", **shared, "image": "https://img/i1.jpg", "brand": "Acme"}],  # one key more
        [{"itemId": "i1", "score": 0.5, **shared, "image": "https://img/i1.jpg"}],  # a score again
        [{"itemId": "i1", "score": 0.5, **other}],  # new metadata objects
        [{"itemId": "i1", "score": 0.5, **{**other, "price": True}}],  # equal to 1, encoded differently
        [{"itemId": "i1", **{**shared, "url": None}}],  # no score, a null column left out
    ]
    events = [export_event(f"u{n}", record={"userId": f"u{n}", "items": items}) for n, items in enumerate(records)]
    fake = FakeBraze()
    destination = braze(fake, include_score=True)
    for event in events:  # one request per user: each one after the items of the one before were kept
        await destination.send([event])
    sent = [body["attributes"][0]["recommended_items"] for _, body, _ in fake.requests]
    assert sent == [
        [{"id": "i1", **shared, "score": 0.9}],
        [{"id": "i1", **shared, "score": 0.5}],
        [{"id": "i1", **shared, "image": "https://img/i1.jpg"}],
        [{"id": "i1", **shared, "image": "https://img/i1.jpg", "brand": "Acme"}],
        [{"id": "i1", **shared, "image": "https://img/i1.jpg", "score": 0.5}],
        [{"id": "i1", **other, "score": 0.5}],
        [{"id": "i1", **other, "price": True, "score": 0.5}],
        [{"id": "i1", "name": "Trail Runner 2", "price": 89.9}],
    ]
    assert sent[6][0]["price"] is True and type(sent[5][0]["price"]) is int


async def test_configured_item_fields_and_scores_that_are_not_numbers():
    fake = FakeBraze()
    destination = braze(fake, item_fields=["name", "missing"], include_score=True)
    items = [{"itemId": "i1", "score": 0.7, "name": "A", "price": 1.0},
             {"itemId": "i2", "score": "high", "name": "B"}]
    await destination.send([export_event("u1", record={"userId": "u1", "items": items})])
    await destination.send([export_event("u2", record={"userId": "u2", "items": items[:1]})])
    first, second = (body["attributes"][0]["recommended_items"] for _, body, _ in fake.requests)
    assert first == [{"id": "i1", "name": "A", "score": 0.7}, {"id": "i2", "name": "B", "score": "high"}]
    assert second == [{"id": "i1", "name": "A", "score": 0.7}]


async def test_an_item_over_the_limits_is_rejected_after_its_id_was_fine_before():
    fake = FakeBraze()
    destination = braze(fake)
    good = export_event("u1")
    bad = export_event("u2")
    bad.record["items"][0]["name"] = "n" * 300  # the same item id as u1's first item, now too long
    with pytest.raises(PartialFailure) as failure:
        await destination.send([good, bad])
    assert failure.value.rejected[1].reason == "value_too_long"
    assert "recommended_items[0].name" in failure.value.rejected[1].message


@pytest.mark.parametrize("config", [
    {}, {"include_score": True}, {"item_fields": ["price", "name"]}, {"item_fields": ["score", "name"]},
    {"item_ids_attribute": None}, {"mode": "campaign", "campaign_id": "c1"}])
@pytest.mark.parametrize("scored", [True, False])
async def test_records_the_workers_checked_once_encode_as_their_plain_dicts_do(config, scored):
    # The workers' records carry their checked view and the catalog entries the items were copied from
    # (connectors/formats/recommendations.py UserRecord): the request bytes are those of the plain dicts.
    from workers.config import Recipe
    from workers.outputs import Decorator

    catalog = {"i1": {"name": "Trail Runner", "price": "89.90"}, "i2": {"name": "Sock", "url": "https://s/i2"},
               "i3": {"name": "n" * 300}}
    decorator = Decorator(Recipe.USER_RECOMMENDATIONS, "weekly", "weekly-1", catalog, False)
    lines = [({"userId": "u1"}, ["i1", "i2"]), ({"userId": "u2"}, ["i2", "i1"]), ({"userId": "u3"}, ["i1", "i3"]),
             ({"userId": "u4"}, ["i2"])]
    rows = []
    for user, (source, item_ids) in enumerate(lines):
        output = {"recommendedItems": item_ids, **({"scores": [0.5 / (r + 1) for r in range(len(item_ids))]}
                                                    if scored else {})}
        raw = orjson.dumps({"input": source, "output": output, "error": None})
        key, line = decorator.read(raw)
        contact = {"attributes": {"tier": "gold"}} if user == 3 else None
        rows.append(export_event(key, record=decorator.decorate(key, line, raw, contact).record))
    assert all(getattr(row.record, "recommendations", None) is not None for row in rows)
    sent = {}
    for kind, batch in (("checked", rows), ("plain", [export_event(r.user_id, record=dict(r.record)) for r in rows])):
        bodies: list[bytes] = []
        destination = BrazeUsers(
            BrazeUsersConfig(type="braze", rest_url="https://rest.iad-01.braze.com", api_key="k", **config), Context(),
            transport=httpx.MockTransport(lambda request: bodies.append(request.content) or httpx.Response(201)))
        for _ in range(2):  # the second time from what the destination kept of the first
            with pytest.raises(PartialFailure) as failure:
                await destination.send(batch)
            sent[kind] = (bodies, {i: e.reason for i, e in failure.value.rejected.items()})
    assert sent["checked"] == sent["plain"]
    assert sent["checked"][1] == {2: "value_too_long"} and len(sent["checked"][0]) == 2


@pytest.mark.parametrize("config", [
    {}, {"include_score": True}, {"item_fields": ["price", "name"]}, {"item_fields": ["score", "name"]},
    {"item_ids_attribute": None}, {"mode": "campaign", "campaign_id": "c1"}])
@pytest.mark.parametrize("scored", [True, False])
async def test_views_whose_records_leave_the_items_out_encode_as_full_records_do(config, scored):
    # BrazeUsers reads rows only through their view (reads_views): the workers then leave the items out of
    # the record and the view copies them only if asked (workers/outputs.py). The requests are the same bytes.
    from workers.config import Recipe
    from workers.outputs import Decorator

    assert BrazeUsers.reads_views
    catalog = {"i1": {"name": "Trail Runner", "price": "89.90"}, "i2": {"name": "Sock", "url": "https://s/i2"},
               "i3": {"name": "n" * 300}}
    lines = [({"userId": "u1"}, ["i1", "i2"]), ({"userId": "u2"}, ["i2", "i1"]), ({"userId": "u3"}, ["i1", "i3"]),
             ({"userId": "u4"}, ["i2"]), ({"userId": "u5"}, ["i1", "i9"])]
    sent = {}
    for views_only in (True, False):
        decorator = Decorator(Recipe.USER_RECOMMENDATIONS, "weekly", "weekly-1", catalog, False, views_only=views_only)
        rows = []
        for user, (source, item_ids) in enumerate(lines):
            output = {"recommendedItems": item_ids, **({"scores": [0.5 / (r + 1) for r in range(len(item_ids))]}
                                                        if scored else {})}
            raw = orjson.dumps({"input": source, "output": output, "error": None})
            key, line = decorator.read(raw)
            contact = {"email": "a@b.example", "attributes": {"tier": "gold"}} if user == 3 else None
            rows.append(export_event(key, record=decorator.decorate(key, line, raw, contact).record))
        if views_only:
            assert "items" not in rows[0].record and "items" in rows[4].record  # u5: an item the catalog lacks
        bodies: list[bytes] = []
        destination = BrazeUsers(
            BrazeUsersConfig(type="braze", rest_url="https://rest.iad-01.braze.com", api_key="k", **config), Context(),
            transport=httpx.MockTransport(lambda request: bodies.append(request.content) or httpx.Response(201)))
        with pytest.raises(PartialFailure) as failure:
            await destination.send(rows)
        sent[views_only] = (bodies, {i: e.reason for i, e in failure.value.rejected.items()})
    assert sent[True] == sent[False] and sent[True][1] == {2: "value_too_long"}
