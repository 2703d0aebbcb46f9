"""mParticle over real HTTP, the production shape: `hub run` answers /v2/events once Kafka has each event,
and a second hub consumes the topic (format mparticle) through identity and the default mapping.
"""

from __future__ import annotations


import httpx
import pytest

from personalize_hub.config import parse_config
from personalize_hub.runtime import Hub
from tests.fixtures.kafka import create_topic, kafka_source, read_jsonl, read_topic, wait_until
from tests.fixtures.hub_process import running_hub

pytestmark = pytest.mark.integration

KEY, SECRET = "mp-key", "mp-secret"
MPID = 6_917_529_027_641_081_857  # > 2**53: must arrive as exactly this id


@pytest.fixture
def edge_hub(tmp_path, kafka_bootstrap, unique_name):
    """`hub run` with the mParticle webhook producing raw batches to a fresh topic."""
    topic = unique_name("mparticle")
    config = {
        "sources": [{"type": "mparticle_webhook", "id": "mp", "api_key": "${MPARTICLE_API_KEY}",
                     "api_secret": "${MPARTICLE_API_SECRET}"}],
        "destinations": [{"type": "kafka_topic", "id": "clickstream", "bootstrap_servers": kafka_bootstrap,
                          "topic": topic, "enable_idempotence": False}],
        "dead_letter": {"type": "file", "id": "dead_letter", "path": str(tmp_path / "edge-dlq.jsonl")},
        "identity": {"enabled": False}, "mapping": {"enabled": False},  # an edge forwards raw events
    }
    env = {"MPARTICLE_API_KEY": KEY, "MPARTICLE_API_SECRET": SECRET}
    with running_hub(config, tmp_path, env, name="edge") as hub:
        yield hub.url, topic


def purchase_batch() -> dict:
    return {
        "mpid": MPID, "environment": "production", "source_request_id": "req-1",
        "user_identities": {"customer_id": "cust-7", "email": "someone@example.com"},
        "user_attributes": {"tier": "gold"},
        "events": [
            {"event_type": "commerce_event", "data": {
                "source_message_id": "buy-1", "session_uuid": "SESSION-A", "timestamp_unixtime_ms": 1_714_564_800_000,
                "product_action": {"action": "purchase", "transaction_id": "o-1", "products": [
                    {"id": "sku-1", "price": 10.0, "quantity": 1}, {"id": "sku-2", "price": 4.5, "quantity": 2}]}}},
            {"event_type": "screen_view", "data": {"source_message_id": "screen-1", "screen_name": "Cart"}},
            {"event_type": "custom_event", "data": {"source_message_id": "broken"}},  # no event_name
        ],
    }


async def test_mparticle_webhook_to_kafka_to_personalize_records(edge_hub, kafka_bootstrap, unique_name, tmp_path):
    base, topic = edge_hub
    await create_topic(kafka_bootstrap, topic, partitions=2)
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.post("/v2/events", json=purchase_batch(), auth=(KEY, "wrong"))).status_code == 401
        response = await client.post("/v2/events", json=purchase_batch(), auth=(KEY, SECRET))
        assert response.status_code == 202, response.text
        assert response.json()["errors"] == [{"event": 2, "reason": "missing_field",
                                              "message": "data.event_name: required"}]
        bulk = await client.post("/v2/bulkevents", json=[
            {"mpid": MPID, "events": [{"event_type": "commerce_event", "data": {
                "source_message_id": "view-1", "timestamp_unixtime_ms": 1_714_564_900_000,
                "product_action": {"action": "view_detail", "products": [{"id": "sku-3", "price": 1.0}]}}}]},
            {"mpid": 1.5e19, "events": []},
        ], auth=(KEY, SECRET))
        assert bulk.status_code == 202 and bulk.json()["errors"][0]["reason"] == "invalid_id"

    # identify + purchase + screen view + view_detail: one Kafka record each, the mpid exact in every one.
    records = await read_topic(kafka_bootstrap, topic, 4)
    assert len(records) == 4 and all(f'"mpid":{MPID}'.encode() in r.value for r in records)

    core = Hub(parse_config({
        "sources": [kafka_source(kafka_bootstrap, topic, unique_name("group"), format="mparticle")],
        "identity": {"store": {"type": "memory"}},
        "destinations": [{"type": "file", "id": "out", "path": str(tmp_path / "out.jsonl")}],
        "dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl")},
    }, {}))
    await core.start()
    try:
        await wait_until(lambda: len(read_jsonl(tmp_path / "out.jsonl")) >= 3, 60, "three interactions")
    finally:
        await core.stop()
    interactions = sorted(read_jsonl(tmp_path / "out.jsonl"), key=lambda r: r["eventId"])
    # The purchase fans out to one interaction per product, named by the action; the screen view is not
    # an interaction by default; the login's mpid links to the customer id.
    assert [(r["eventId"], r["eventType"], r["itemId"], r.get("eventValue")) for r in interactions] == [
        ("buy-1:0", "purchase", "sku-1", 10.0), ("buy-1:1", "purchase", "sku-2", 4.5),
        ("view-1:0", "view_detail", "sku-3", 1.0)]
    assert read_jsonl(tmp_path / "dlq.jsonl") == []
