"""personalize_items / personalize_users: ten per call, repeated updates coalesced (latest wins), bad ones isolated."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from connectors.destinations.personalize.items import PersonalizeItems, PersonalizeItemsConfig
from connectors.destinations.personalize.users import PersonalizeUsers, PersonalizeUsersConfig
from personalize_hub.config import parse_config
from hub.connector import Context, Outcome
from hub.delivery.retry import RetryPolicy
from hub.delivery.runner import DestinationRunner
from hub.errors import ConfigError, RejectedError
from hub.events import Event, EventKind, SourceRef

from .conftest import FakeIngestApi, catalog_record

FAST = RetryPolicy(base_delay_secs=0.001, max_delay_secs=0.002, max_attempts=4, max_elapsed_secs=5)
ITEMS_ARN = "arn:aws:personalize:us-east-1:000000000000:dataset/shop/ITEMS"
USERS_ARN = "arn:aws:personalize:us-east-1:000000000000:dataset/shop/USERS"


def items_destination(api: FakeIngestApi, **config) -> PersonalizeItems:
    destination = PersonalizeItems(
        PersonalizeItemsConfig(type="personalize_items", dataset_arn=ITEMS_ARN, **config), Context()
    )
    destination._api = api
    return destination


def item(message_id: str, item_id: str, version: int = 0):
    return catalog_record(message_id, item_id, version=str(version))


async def deliver(destination, events, *, max_wait_secs=0.01):
    policy = destination.config.batch_policy()
    # No rate ceiling in unit tests: the 10 requests/s quota would only make them slow.
    runner = DestinationRunner(destination, replace(policy, max_wait_secs=max_wait_secs,
                                                    max_requests_per_sec=None), FAST)
    await runner.start()
    futures = [await runner.submit(e) for e in events]
    settlements = await asyncio.wait_for(asyncio.gather(*futures), 10)
    await runner.close()
    return settlements


def versions(params) -> dict[str, str]:
    return {r["itemId"]: json.loads(r["properties"])["version"] for r in params["items"]}


async def test_repeated_updates_in_a_batch_are_coalesced_latest_wins():
    api = FakeIngestApi()
    destination = items_destination(api)
    batch = [item("m0", "a", 1), item("m1", "b", 1), item("m2", "a", 2), item("m3", "c", 1), item("m4", "a", 3)]
    await destination.send(batch)  # returning normally settles all five, the superseded ones included
    (operation, params), = api.calls
    assert operation == "PutItems" and params["datasetArn"] == ITEMS_ARN
    assert [r["itemId"] for r in params["items"]] == ["b", "c", "a"]  # in order of each id's last update
    assert versions(params) == {"a": "3", "b": "1", "c": "1"}


async def test_through_the_runner_every_update_settles_and_the_last_one_is_sent_last():
    api = FakeIngestApi()
    updates = [item(f"m{i}", f"sku-{i % 4}", i) for i in range(30)]
    settlements = await deliver(items_destination(api), updates, max_wait_secs=0.2)
    assert {s.outcome for s in settlements} == {Outcome.DELIVERED}
    assert all(len(p["items"]) <= 10 for _, p in api.calls)
    latest: dict[str, str] = {}
    for _, params in api.calls:  # calls go one at a time (one partition), so later calls win
        latest.update(versions(params))
    assert latest == {f"sku-{k}": str(max(i for i in range(30) if i % 4 == k)) for k in range(4)}
    assert sum(len(p["items"]) for _, p in api.calls) < 30  # repeated ids shared calls


def test_items_without_an_id_are_refused_by_the_encoder_and_catalog_tracks_are_taken_as_items():
    destination = items_destination(FakeIngestApi())

    def catalog(message_id: str, **properties) -> Event:
        return Event(kind=EventKind.ITEM, source=SourceRef(source_id="web", message_id=message_id), timestamp=1.0,
                     name="Product Updated", properties=properties)

    good, missing = destination.encode([catalog("m0", product_id="a"), catalog("m1", name="no id")])
    assert [unit.record for unit in good] == [{"itemId": "a", "properties": '{"available":"true"}'}]
    assert missing.reason == "missing_item_id" and missing.source.message_id == "m1"
    updated = Event(kind=EventKind.INTERACTION, source=SourceRef(source_id="web", message_id="t1"), timestamp=1.0,
                    name="Product Updated", call="track", properties={"product_id": "a"})
    viewed = Event(kind=EventKind.INTERACTION, source=SourceRef(source_id="web", message_id="t2"), timestamp=1.0,
                   name="Product Viewed", call="track", properties={"product_id": "a"})
    assert destination.accepts(updated) and not destination.accepts(viewed)  # routed by what they become


async def test_a_bad_record_is_isolated_and_an_earlier_valid_version_still_lands():
    def service(operation, params, call):
        if any(r["itemId"] == "a" and json.loads(r["properties"])["version"] == "2" for r in params["items"]):
            return RejectedError("invalid_input", "properties of a are not valid")
        return None

    api = FakeIngestApi(service)
    batch = [item("m0", "a", 1), item("m1", "b", 1), item("m2", "a", 2)]
    settlements = await deliver(items_destination(api), batch)
    assert [s.outcome for s in settlements] == [Outcome.DELIVERED, Outcome.DELIVERED, Outcome.REJECTED]
    assert settlements[2].message == "properties of a are not valid"


async def test_users_destination_sends_put_users():
    api = FakeIngestApi()
    destination = PersonalizeUsers(
        PersonalizeUsersConfig(type="personalize_users", dataset_arn=USERS_ARN), Context())
    destination._api = api
    await destination.send([catalog_record("m0", "u1", EventKind.USER, tier="gold"),
                            catalog_record("m1", "u1", EventKind.USER, tier="platinum")])
    (operation, params), = api.calls
    assert operation == "PutUsers" and params["datasetArn"] == USERS_ARN
    assert params["users"] == [{"userId": "u1", "properties": '{"tier": "platinum"}'}]


def test_limits_are_the_quota_and_config_may_only_lower_them():
    for config in (PersonalizeItemsConfig, PersonalizeUsersConfig):
        assert (config.api_limits.max_events, config.api_limits.max_requests_per_sec) == (10, 10)
    with pytest.raises(ConfigError, match="exceeds the API limit 10"):
        parse_config({"destinations": [{"type": "personalize_items", "dataset_arn": ITEMS_ARN,
                                        "batch": {"max_requests_per_sec": 50}}]}, {})


def test_dataset_arn_from_environment_and_checked(monkeypatch):
    monkeypatch.setenv("PERSONALIZE_USERS_DATASET_ARN", USERS_ARN)
    assert PersonalizeUsersConfig(type="personalize_users").dataset_arn == USERS_ARN
    with pytest.raises(ConfigError, match="not a Personalize dataset ARN"):
        parse_config({"destinations": [{"type": "personalize_items", "dataset_arn": "my-items"}]}, {})
    monkeypatch.delenv("PERSONALIZE_ITEMS_DATASET_ARN", raising=False)
    with pytest.raises(ConfigError, match="PERSONALIZE_ITEMS_DATASET_ARN"):
        parse_config({"destinations": [{"type": "personalize_items"}]}, {})
