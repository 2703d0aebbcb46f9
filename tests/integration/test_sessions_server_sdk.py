"""Segment's server-side SDK after a web login: its userId-only events continue the login's session."""

from __future__ import annotations

import httpx
from segment.analytics import Client

from tests.integration.test_hub_run import hub_process, read_lines  # noqa: F401 - the running-hub fixture


def test_server_side_events_after_a_login_share_the_browser_session(hub_process):  # noqa: F811
    base, data_dir = hub_process
    # The browser (analytics.js): anonymous browsing, then the login, both with the anonymousId.
    browser = {"batch": [
        {"type": "track", "event": "Product Viewed", "anonymousId": "anon-1", "messageId": "web-1",
         "timestamp": "2026-03-01T10:00:00Z", "properties": {"product_id": "p1"}},
        {"type": "track", "event": "Product Viewed", "anonymousId": "anon-1", "userId": "user-1",
         "messageId": "web-2", "timestamp": "2026-03-01T10:01:00Z", "properties": {"product_id": "p2"}},
    ]}
    assert httpx.post(f"{base}/v1/batch", json=browser, auth=("wk-test", "")).status_code == 200

    # The shop's backend: Segment's official Python library, which sends the userId only.
    server = Client(write_key="wk-test", host=base, sync_mode=True, max_retries=0,
                    on_error=lambda error, batch: errors.append(error))
    errors: list[Exception] = []
    server.track(user_id="user-1", event="Product Added", message_id="srv-1",
                 timestamp=_at("10:05"), properties={"product_id": "p2"})
    server.track(user_id="user-1", event="Order Completed", message_id="srv-2", timestamp=_at("10:06"),
                 properties={"order_id": "o1", "products": [{"product_id": "p2", "price": 10}]})
    # A day later, past the idle timeout: a new session, still one Personalize sees for web and server alike.
    server.track(user_id="user-1", event="Product Viewed", message_id="srv-3", timestamp=_at("10:00", day=2),
                 properties={"product_id": "p3"})
    server.flush()
    assert errors == []

    sessions = {r["eventId"].split(":")[0]: r["sessionId"] for r in read_lines(data_dir / "records.jsonl")
                if "eventId" in r}
    assert {sessions["web-1"], sessions["web-2"], sessions["srv-1"], sessions["srv-2"]} == {sessions["web-1"]}
    assert sessions["srv-3"] != sessions["web-1"]
    users = {r["eventId"].split(":")[0]: r["userId"] for r in read_lines(data_dir / "records.jsonl") if "eventId" in r}
    assert users["srv-1"] == users["web-2"] == "user-1"


def _at(clock: str, day: int = 1):
    from datetime import datetime, timezone

    return datetime.fromisoformat(f"2026-03-0{day}T{clock}:00").replace(tzinfo=timezone.utc)
