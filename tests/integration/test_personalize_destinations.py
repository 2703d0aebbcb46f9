"""Personalize destinations against a running local_personalize over HTTP, through both request paths.

Events are checked where the server keeps them (its SQLite store, opened read-only): by eventId, user
and session. A fault-injecting proxy in front of the server answers 429 to prove throttling is retried.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from botocore.exceptions import ClientError

from connectors.destinations.personalize.events import PersonalizeEvents, PersonalizeEventsConfig
from connectors.destinations.personalize.items import PersonalizeItems, PersonalizeItemsConfig
from connectors.destinations.personalize.unit import PersonalizeRecord
from connectors.destinations.personalize.users import PersonalizeUsers, PersonalizeUsersConfig
from connectors.aws import AwsClients
from personalize_hub.config import AwsConfig, parse_config
from hub.connector import Context, Outcome
from hub.delivery.retry import RetryPolicy
from hub.delivery.runner import DestinationRunner, Settlement
from hub.events import Event, EventKind, SourceRef
from personalize_hub.runtime import Hub
from local_personalize.settings import Settings
from tests.fixtures.local_personalize import personalize_client

pytestmark = pytest.mark.integration

FAST = RetryPolicy(base_delay_secs=0.01, max_delay_secs=0.1, max_attempts=8, max_elapsed_secs=20)
WAIT_SECS = 30.0


@pytest.fixture(autouse=True)
def credentials_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub reads credentials from the standard chain: give it dummy ones (CI sets its own), and never
    let the chain fall through to the instance-metadata endpoint."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
        if not os.environ.get(name):
            monkeypatch.setenv(name, value)


def _schema(name: str, fields: list[dict[str, Any]]) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "com.amazonaws.personalize.schema",
                       "version": "1.0", "fields": fields})


INTERACTIONS = _schema("Interactions", [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                                        {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
                                        {"name": "EVENT_VALUE", "type": ["null", "float"]}])
ITEMS = _schema("Items", [{"name": "ITEM_ID", "type": "string"},
                          {"name": "GENRE", "type": "string", "categorical": True}])
USERS = _schema("Users", [{"name": "USER_ID", "type": "string"},
                          {"name": "SEGMENT", "type": "string", "categorical": True}])


def _wait_active(describe, key: str) -> None:
    deadline = time.monotonic() + WAIT_SECS
    while (status := describe()[key]["status"]) != "ACTIVE":
        assert status != "CREATE FAILED" and time.monotonic() < deadline, f"{key} is {status}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def shop(local_personalize_server) -> dict[str, str]:
    """A dataset group with interactions, items and users datasets and an ACTIVE event tracker."""
    control = personalize_client(local_personalize_server.url)
    name = f"hub-dest-{uuid.uuid4().hex[:8]}"
    group = control.create_dataset_group(name=name)["datasetGroupArn"]
    _wait_active(lambda: control.describe_dataset_group(datasetGroupArn=group), "datasetGroup")
    arns = {"group": group}
    for kind, schema in (("Interactions", INTERACTIONS), ("Items", ITEMS), ("Users", USERS)):
        schema_arn = control.create_schema(name=f"{name}-{kind}", schema=schema)["schemaArn"]
        arn = control.create_dataset(name=f"{name}-{kind}", schemaArn=schema_arn, datasetGroupArn=group,
                                     datasetType=kind)["datasetArn"]
        _wait_active(lambda arn=arn: control.describe_dataset(datasetArn=arn), "dataset")
        arns[kind] = arn
    tracker = control.create_event_tracker(name=f"{name}-tracker", datasetGroupArn=group)
    _wait_active(lambda: control.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"]), "eventTracker")
    arns["tracking_id"] = tracker["trackingId"]
    return arns


def _read_only(server) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{Settings(data_dir=server.data_dir).db_path}?mode=ro", uri=True)


def stored_interactions(server, dataset_arn: str) -> dict[str, tuple[str | None, str | None, str]]:
    """eventId → (userId, sessionId, itemId) of what the server stored, read from its own database."""
    with _read_only(server) as db:
        rows = db.execute("SELECT event_id, user_id, session_id, item_id FROM interactions "
                          "JOIN resources ON resources.seq = interactions.dataset WHERE resources.arn = ?",
                          (dataset_arn,)).fetchall()
    return {event_id: (user, session, item) for event_id, user, session, item in rows}


def stored_records(server, dataset_arn: str) -> dict[str, dict[str, Any]]:
    with _read_only(server) as db:
        rows = db.execute("SELECT record_id, properties FROM records WHERE dataset_arn = ?", (dataset_arn,))
        return {record_id: json.loads(properties) for record_id, properties in rows}


def interaction(event_id: str, session: str, user: str | None, item: str, **record: Any) -> PersonalizeRecord:
    """An interaction as the encoder hands it to the destination's send."""
    sent_at = time.time()
    event = Event(kind=EventKind.INTERACTION, source=SourceRef(source_id="test", message_id=event_id),
                  timestamp=sent_at, user_id=user, session_id=session)
    body = {"eventId": event_id, "eventType": "Product Viewed", "sentAt": sent_at, "itemId": item, **record}
    return PersonalizeRecord(event, event.source, EventKind.INTERACTION, body)


def catalog(message_id: str, kind: EventKind, record_id: str, **properties: str) -> PersonalizeRecord:
    id_key = "itemId" if kind is EventKind.ITEM else "userId"
    event = Event(kind=kind, source=SourceRef(source_id="test", message_id=message_id), timestamp=time.time())
    return PersonalizeRecord(event, event.source, kind, {id_key: record_id, "properties": json.dumps(properties)})


@pytest.fixture
async def aws(local_personalize_server):
    clients = AwsClients(AwsConfig(personalize_endpoint_url=local_personalize_server.url))
    yield clients
    await clients.close()


async def deliver(destination, events: Sequence[Event], retry: RetryPolicy = FAST) -> list[Settlement]:
    # Quick batches for a test; everything else is the destination's own policy.
    policy = replace(destination.config.batch_policy(), max_wait_secs=0.05)
    runner = DestinationRunner(destination, policy, retry)
    await runner.start()
    try:
        futures = [await runner.submit(event) for event in events]
        return await asyncio.wait_for(asyncio.gather(*futures), WAIT_SECS)
    finally:
        await runner.close()


def events_destination(aws, tracking_id: str, request_path: str = "lean") -> PersonalizeEvents:
    config = PersonalizeEventsConfig(type="personalize_events", tracking_id=tracking_id, request_path=request_path)
    return PersonalizeEvents(config, Context(resources={AwsClients: aws}))


@pytest.mark.parametrize("request_path", ["lean", "botocore"])
async def test_events_are_delivered_in_session_batches_and_stored(aws, shop, local_personalize_server, request_path):
    run = uuid.uuid4().hex[:6]
    sessions = [(f"{run}-s1", f"{run}-alice"), (f"{run}-s2", None), (f"{run}-s3", f"{run}-bob")]
    events = [interaction(f"{run}-{s}-{i}", s, u, f"sku-{i}") for i in range(12) for s, u in sessions]

    settlements = await deliver(events_destination(aws, shop["tracking_id"], request_path), events)

    assert [s.outcome for s in settlements] == [Outcome.DELIVERED] * len(events)
    stored = stored_interactions(local_personalize_server, shop["Interactions"])
    for event in events:
        assert stored[event.message_id] == (event.user_id, event.session_id, event.record["itemId"])


async def test_one_invalid_event_in_ten_is_rejected_with_the_services_message(aws, shop, local_personalize_server):
    run = uuid.uuid4().hex[:6]
    events = [interaction(f"{run}-{i}", f"{run}-s", f"{run}-u", f"sku-{i}") for i in range(10)]
    # PutEvents allows 1..40 (docs/reference/personalize-api.md#putevents)
    events[6].record["recommendationId"] = "R" * 41
    events_client = personalize_client(local_personalize_server.url, "personalize-events", validate=False)
    with pytest.raises(ClientError) as direct:
        events_client.put_events(trackingId=shop["tracking_id"], sessionId="probe", eventList=[events[6].record])

    settlements = await deliver(events_destination(aws, shop["tracking_id"]), events)

    assert [s.outcome for s in settlements] == [Outcome.DELIVERED] * 6 + [Outcome.REJECTED] + [Outcome.DELIVERED] * 3
    assert settlements[6].reason == "invalid_input"
    assert settlements[6].message == direct.value.response["Error"]["Message"]
    stored = stored_interactions(local_personalize_server, shop["Interactions"])
    assert {e.message_id for e in events} & set(stored) == {e.message_id for i, e in enumerate(events) if i != 6}


@pytest.fixture
async def throttling_proxy(local_personalize_server):
    """Forwards to local_personalize, but answers the first `throttle_first` requests 429 ThrottlingException."""
    state = {"throttle_first": 0, "seen": 0, "throttled": 0}
    session = aiohttp.ClientSession()

    async def forward(request: web.BaseRequest) -> web.StreamResponse:
        state["seen"] += 1
        body = await request.read()
        if state["seen"] <= state["throttle_first"]:
            state["throttled"] += 1
            return web.json_response({"__type": "ThrottlingException", "message": "Rate exceeded"}, status=429,
                                     headers={"x-amzn-ErrorType": "ThrottlingException"})
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with session.request(request.method, local_personalize_server.url + request.path_qs,
                                   data=body, headers=headers) as answer:
            return web.Response(status=answer.status, body=await answer.read(),
                                headers={k: v for k, v in answer.headers.items()
                                         if k.lower() in ("content-type", "x-amzn-errortype", "x-amzn-requestid")})

    runner = web.ServerRunner(web.Server(forward))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state["url"] = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield state
    await runner.cleanup()
    await session.close()


@pytest.mark.parametrize("request_path", ["lean", "botocore"])
async def test_throttled_calls_are_retried_and_delivered(shop, local_personalize_server, throttling_proxy,
                                                         request_path):
    throttling_proxy["throttle_first"] = 3
    aws = AwsClients(AwsConfig(personalize_endpoint_url=throttling_proxy["url"]))
    run = uuid.uuid4().hex[:6]
    events = [interaction(f"{run}-{i}", f"{run}-s", f"{run}-u", f"sku-{i}") for i in range(5)]
    try:
        settlements = await deliver(events_destination(aws, shop["tracking_id"], request_path), events)
    finally:
        await aws.close()
    assert [s.outcome for s in settlements] == [Outcome.DELIVERED] * 5
    # One batch: three 429s, then through. Four requests in all: botocore retried nothing on its own.
    assert (throttling_proxy["throttled"], throttling_proxy["seen"]) == (3, 4)
    assert {e.message_id for e in events} <= set(stored_interactions(local_personalize_server, shop["Interactions"]))


async def test_an_unknown_tracker_holds_events_instead_of_rejecting_them(aws, shop, local_personalize_server):
    run = uuid.uuid4().hex[:6]
    events = [interaction(f"{run}-{i}", f"{run}-s", None, "sku-1") for i in range(3)]
    brief = RetryPolicy(base_delay_secs=0.01, max_delay_secs=0.02, max_attempts=3, max_elapsed_secs=5)
    settlements = await deliver(events_destination(aws, str(uuid.uuid4())), events, brief)
    assert {(s.outcome, s.reason) for s in settlements} == {(Outcome.RETRY, "retries_exhausted")}
    assert not {e.message_id for e in events} & set(stored_interactions(local_personalize_server,
                                                                       shop["Interactions"]))


@pytest.mark.parametrize("request_path", ["lean", "botocore"])
async def test_item_and_user_updates_are_coalesced_and_the_latest_is_stored(aws, shop, local_personalize_server,
                                                                             request_path):
    run = uuid.uuid4().hex[:6]
    items = PersonalizeItems(PersonalizeItemsConfig(type="personalize_items", dataset_arn=shop["Items"],
                                                    request_path=request_path), Context(resources={AwsClients: aws}))
    users = PersonalizeUsers(PersonalizeUsersConfig(type="personalize_users", dataset_arn=shop["Users"],
                                                    request_path=request_path), Context(resources={AwsClients: aws}))
    item_updates = [catalog(f"{run}-i{n}", EventKind.ITEM, f"{run}-sku-{n % 4}", genre=f"g{n}") for n in range(15)]
    user_updates = [catalog(f"{run}-u{n}", EventKind.USER, f"{run}-user-{n % 2}", segment=f"s{n}") for n in range(5)]

    settled = await asyncio.gather(deliver(items, item_updates), deliver(users, user_updates))

    assert {s.outcome for batch in settled for s in batch} == {Outcome.DELIVERED}
    stored_items = stored_records(local_personalize_server, shop["Items"])
    assert {k: v["GENRE"] for k, v in stored_items.items() if k.startswith(run)} == {
        f"{run}-sku-{k}": f"g{max(n for n in range(15) if n % 4 == k)}" for k in range(4)}
    stored_users = stored_records(local_personalize_server, shop["Users"])
    assert {k: v["SEGMENT"] for k, v in stored_users.items() if k.startswith(run)} == {
        f"{run}-user-0": "s4", f"{run}-user-1": "s3"}


async def test_the_hub_runtime_builds_the_aws_clients_from_config(shop, local_personalize_server, tmp_path):
    config = parse_config({
        "aws": {"personalize_endpoint_url": "${PERSONALIZE_ENDPOINT_URL:-}"},
        "destinations": [{"type": "personalize_events", "tracking_id": "${PERSONALIZE_TRACKING_ID}"}],
        "dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl")},
    }, {"PERSONALIZE_ENDPOINT_URL": local_personalize_server.url, "PERSONALIZE_TRACKING_ID": shop["tracking_id"]})
    hub = Hub(config)
    await hub.start()
    run = uuid.uuid4().hex[:6]
    try:
        futures = [await hub.runners[0].submit(interaction(f"{run}-{i}", f"{run}-s", None, "sku-1")) for i in range(3)]
        settlements = await asyncio.wait_for(asyncio.gather(*futures), WAIT_SECS)
    finally:
        await hub.stop()
    assert [s.outcome for s in settlements] == [Outcome.DELIVERED] * 3
    assert hub.context.resource(AwsClients).personalize_endpoint_url == local_personalize_server.url
    assert {f"{run}-{i}" for i in range(3)} <= set(stored_interactions(local_personalize_server, shop["Interactions"]))
