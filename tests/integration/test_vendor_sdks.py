"""The vendors' official SDKs, installed from PyPI and npm, as real clients of a running `hub run`.

Each SDK sends one shopper's story: an anonymous product view, the login (identify) and an order of
three products. The hub must turn it into the Personalize records a user expects (one sessionId across
the login, one interaction per product, the user's id after the login, their traits as a users record),
and the SDK's own error callback must have seen nothing. The SDKs flush every ~100 ms and retry once, so
a hub that answers wrongly fails the test in seconds instead of hanging in the SDK's backoff.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import mparticle
import pytest
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from tests.fixtures.hub_process import running_hub

pytestmark = pytest.mark.integration

NODE_SDKS = Path(__file__).parent / "node_sdks"
SEGMENT_KEY, RUDDER_KEY = "segment-write-key", "rudder-write-key"
MP_KEY, MP_SECRET = "mp-key", "mp-secret"
PRICES = (10.0, 4.5, 7.25)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """One hub for every SDK: Segment's Tracking API (RudderStack's SDKs speak it too) and mParticle's."""
    workdir = tmp_path_factory.mktemp("vendor-sdks")
    config = {
        "identity": {"store": {"type": "sqlite", "path": str(workdir / "identity.sqlite3")}},
        "sources": [
            {"type": "segment_webhook", "id": "web", "write_keys": ["${SEGMENT_WRITE_KEY}", "${RUDDER_WRITE_KEY}"]},
            {"type": "mparticle_webhook", "id": "mp", "api_key": "${MPARTICLE_API_KEY}",
             "api_secret": "${MPARTICLE_API_SECRET}"},
        ],
        "destinations": [{"type": "file", "id": "records", "path": str(workdir / "records.jsonl")}],
        "dead_letter": {"type": "file", "id": "dead_letter", "path": str(workdir / "dead-letter.jsonl")},
    }
    env = {"SEGMENT_WRITE_KEY": SEGMENT_KEY, "RUDDER_WRITE_KEY": RUDDER_KEY,
           "MPARTICLE_API_KEY": MP_KEY, "MPARTICLE_API_SECRET": MP_SECRET}
    with running_hub(config, workdir, env) as hub:
        yield hub.url, workdir


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def shopper_calls(name: str) -> list[tuple[str, dict]]:
    """Segment-spec calls: anonymous view, login, order of three products; every id starts with `name`."""
    anonymous_id, user_id = f"{name}-anon", f"{name}-user"
    products = [{"product_id": f"{name}-sku-{i}", "price": price, "quantity": 1} for i, price in enumerate(PRICES)]
    return [
        ("track", {"anonymousId": anonymous_id, "event": "Product Viewed", "messageId": f"{name}-view",
                   "properties": {"product_id": f"{name}-sku-viewed", "price": 3.0}}),
        ("identify", {"userId": user_id, "anonymousId": anonymous_id, "messageId": f"{name}-login",
                      "traits": {"plan": "pro"}}),
        ("track", {"userId": user_id, "anonymousId": anonymous_id, "event": "Order Completed",
                   "messageId": f"{name}-order",
                   "properties": {"order_id": f"{name}-order-1", "revenue": sum(PRICES), "products": products}}),
    ]


def assert_shopper_records(workdir: Path, name: str, view_type: str, order_type: str) -> None:
    """The Personalize records of one shopper's story, as the file destination wrote them."""
    records = read_jsonl(workdir / "records.jsonl")
    interactions = [r for r in records if str(r.get("itemId", "")).startswith(f"{name}-sku-")]
    view = [r for r in interactions if r["eventType"] == view_type]
    order = sorted((r for r in interactions if r["eventType"] == order_type), key=lambda r: r["itemId"])
    assert len(view) == 1 and len(order) == len(PRICES), interactions
    assert view[0]["itemId"] == f"{name}-sku-viewed" and view[0]["userId"] is None  # anonymous when it happened
    # One interaction per product, each the user's after the login, all in the session the visit opened.
    assert [(r["itemId"], r["userId"], r.get("eventValue")) for r in order] == [
        (f"{name}-sku-{i}", f"{name}-user", price) for i, price in enumerate(PRICES)]
    assert {r["sessionId"] for r in interactions} == {view[0]["sessionId"]} and view[0]["sessionId"]
    assert len({r["eventId"] for r in interactions}) == len(interactions)
    # The login's traits, as a Personalize users record.
    assert {"userId": f"{name}-user", "properties": '{"plan":"pro"}'} in records
    dead = [r for r in read_jsonl(workdir / "dead-letter.jsonl") if name in json.dumps(r)]
    assert dead == []


def send_with_python_sdk(client, calls: list[tuple[str, dict]]) -> None:
    keys = {"anonymousId": "anonymous_id", "userId": "user_id", "messageId": "message_id"}
    for call, message in calls:
        getattr(client, call)(**{keys.get(k, k): v for k, v in message.items()})
    client.shutdown()  # flushes the queue, then stops the upload thread


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_segment_analytics_python(hub, gzip):
    base, workdir = hub
    name, errors = f"segment-py-{'gzip' if gzip else 'plain'}", []
    client = SegmentClient(SEGMENT_KEY, host=base, gzip=gzip, max_retries=1, upload_interval=0.1,
                           max_total_backoff_duration=5, on_error=lambda err, batch: errors.append(repr(err)))
    send_with_python_sdk(client, shopper_calls(name))
    assert errors == []
    assert_shopper_records(workdir, name, "Product Viewed", "Order Completed")


def test_rudder_sdk_python_defaults(hub):
    """RudderStack's Python SDK with its default settings (gzip on), only retries and interval shortened."""
    base, workdir = hub
    name, errors = "rudder-py", []
    client = RudderClient(RUDDER_KEY, host=base, max_retries=1, upload_interval=0.1,
                          on_error=lambda err, batch: errors.append(repr(err)))
    send_with_python_sdk(client, shopper_calls(name))
    assert errors == []
    assert_shopper_records(workdir, name, "Product Viewed", "Order Completed")


def test_mparticle_python_sdk(hub):
    """mParticle's Python SDK: the anonymous view by upload_events, the login and order by bulk_upload_events."""
    base, workdir = hub
    name, mpid = "mparticle-py", 6_917_529_027_641_081_857
    configuration = mparticle.Configuration()
    configuration.api_key, configuration.api_secret, configuration.host = MP_KEY, MP_SECRET, f"{base}/v2"
    api = mparticle.EventsApi(configuration)

    def commerce_event(action: mparticle.ProductAction, message_id: str) -> mparticle.CommerceEvent:
        return mparticle.CommerceEvent(action, source_message_id=message_id)

    # Events go through the `events` setter, as the SDK's README does: only it stamps each event_type.
    visit = mparticle.Batch(environment="development", mpid=mpid)
    visit.events = [commerce_event(
        mparticle.ProductAction("view_detail", products=[mparticle.Product(id=f"{name}-sku-viewed", price=3.0)]),
        f"{name}-view")]
    products = [mparticle.Product(id=f"{name}-sku-{i}", name=f"p{i}", price=price, quantity=1)
                for i, price in enumerate(PRICES)]
    order = mparticle.ProductAction("purchase", transaction_id=f"{name}-order-1", total_amount=sum(PRICES),
                                    products=products)
    login = mparticle.Batch(environment="development", mpid=mpid,
                            user_identities=mparticle.UserIdentities(customerid=f"{name}-user"),
                            user_attributes={"plan": "pro"})
    login.events = [commerce_event(order, f"{name}-order")]
    # Both raise mparticle.rest.ApiException on any answer but 2xx: that is the SDK's error report.
    api.upload_events(visit)
    api.bulk_upload_events([login])
    records = read_jsonl(workdir / "records.jsonl")
    # The hub's user id is the customer id; before the login the mpid is the anonymous id.
    assert_shopper_records(workdir, name, "view_detail", "purchase")
    assert not any(str(mpid) == r.get("userId") for r in records)


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_node_sdk(hub, sdk):
    """@segment/analytics-node and @rudderstack/rudder-sdk-node (gzip by default), driven by node_sdks/send.js."""
    base, workdir = hub
    node = shutil.which("node")
    assert node and (NODE_SDKS / "node_modules").is_dir(), "node or the npm packages missing: run scripts/setup"
    name = f"{sdk}-node"
    request = {"sdk": sdk, "host": base, "writeKey": SEGMENT_KEY if sdk == "segment" else RUDDER_KEY,
               "calls": shopper_calls(name)}
    result = subprocess.run([node, "send.js"], cwd=NODE_SDKS, input=json.dumps(request), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"errors": []}, result.stderr
    assert_shopper_records(workdir, name, "Product Viewed", "Order Completed")
