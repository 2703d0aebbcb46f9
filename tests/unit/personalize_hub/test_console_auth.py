"""Console access: token (Bearer or login cookie), CSRF on state changes, loopback-only read-only default."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from personalize_hub.config import parse_config
from personalize_hub.ingest import build_app
from personalize_hub.runtime import Hub

TOKEN = "console-token-0123456789"


def config(tmp_path, token: str | None):
    data = {
        "identity": {"store": {"type": "memory"}},
        "sources": [{"type": "segment_webhook", "id": "web", "write_keys": ["wk-secret-1"]}],
        "destinations": [{"type": "file", "id": "records", "path": str(tmp_path / "records.jsonl")}],
        "dead_letter": {"type": "file", "id": "dead_letter", "path": str(tmp_path / "dead.jsonl")},
    }
    if token:
        data["console"] = {"token": token}
    return parse_config(data)


@pytest.fixture
def client_for(tmp_path):
    def make(token: str | None = TOKEN, host: str = "127.0.0.1") -> TestClient:
        return TestClient(build_app(Hub(config(tmp_path, token)), bound_host=host), base_url="http://127.0.0.1")
    return make


def console_paths(client: TestClient) -> list[tuple[str, str]]:
    paths = []
    for route in client.app.routes:
        if getattr(route, "path", "") == "/console":
            for sub in getattr(route, "routes", []):
                if sub.path.startswith("/static"):
                    continue
                path = sub.path.replace("{index:int}", "0").replace("{name}", "weekly")
                for method in sorted(getattr(sub, "methods", None) or {"GET"}):
                    if method != "HEAD":
                        paths.append((method, "/console" + path))
    return paths


def test_every_console_route_answers_401_without_credentials(client_for):
    with client_for() as client:
        paths = console_paths(client)
        assert len(paths) > 15
        for method, path in paths:
            if path == "/console/login":
                continue
            response = client.request(method, path)
            assert response.status_code == 401, (method, path, response.status_code)
        assert client.get("/console/api/events", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_bearer_token_reads_and_writes_without_csrf(client_for):
    with client_for() as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/console/api/events", headers=auth).json() == []
        replay = client.post("/console/api/dead-letter/replay", headers=auth, json={"reason": "none_such"})
        assert replay.status_code == 200 and replay.json()["replayed"] == 0


def test_login_sets_a_strict_httponly_cookie_and_state_changes_need_the_csrf_value(client_for):
    with client_for() as client:
        wrong = client.post("/console/login", data={"token": "nope", "next": "/console/"}, follow_redirects=False)
        assert wrong.status_code == 401 and "wrong token" in wrong.text
        foreign = client.post("/console/login", data={"token": TOKEN}, headers={"Origin": "http://evil.example"},
                              follow_redirects=False)
        assert foreign.status_code == 403
        ok = client.post("/console/login", data={"token": TOKEN, "next": "/console/events"}, follow_redirects=False)
        assert ok.status_code == 303 and ok.headers["location"] == "/console/events"
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN.lower() not in cookie
        page = client.get("/console/dead-letter")
        assert page.status_code == 200
        csrf = re.search(r'<meta name="csrf" content="([0-9a-f]+)">', page.text).group(1)
        assert client.post("/console/api/dead-letter/replay", json={}).status_code == 403  # cookie alone
        bad = client.post("/console/api/dead-letter/replay", json={}, headers={"X-CSRF-Token": "0" * 64})
        assert bad.status_code == 403
        good = client.post("/console/api/dead-letter/replay", json={}, headers={"X-CSRF-Token": csrf})
        assert good.status_code == 200
        logout = client.post("/console/logout", data={"csrf": csrf}, follow_redirects=False)
        assert logout.status_code == 303


def test_an_offsite_redirect_after_login_is_not_followed(client_for):
    with client_for() as client:
        ok = client.post("/console/login", data={"token": TOKEN, "next": "https://evil.example/"},
                         follow_redirects=False)
        assert ok.headers["location"] == "/console/"


def test_without_a_token_the_console_is_read_only_on_loopback(client_for):
    with client_for(token=None) as client:
        assert client.get("/console/").status_code == 200
        assert client.get("/console/api/events").status_code == 200
        refused = client.post("/console/api/dead-letter/replay", json={})
        assert refused.status_code == 403 and "read-only" in refused.json()["message"]
        assert client.post("/console/api/jobs/weekly/run").status_code == 403


def test_without_a_token_the_console_is_off_on_other_addresses(client_for):
    with client_for(token=None, host="0.0.0.0") as client:
        for path in ("/console/", "/console/api/events", "/console/config"):
            assert client.get(path).status_code == 403


def test_no_secret_is_rendered(client_for):
    with client_for() as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for path in ("/console/config", "/console/api/config", "/console/", "/console/api/overview"):
            text = client.get(path, headers=auth).text
            assert TOKEN not in text and "wk-secret-1" not in text, path
        client.post("/v1/track", json={"userId": "u1", "event": "Product Viewed", "writeKey": "wk-secret-1",
                                       "properties": {"product_id": "p1"}})
        events = client.get("/console/api/events", headers=auth)
        assert events.json() and "wk-secret-1" not in events.text


def test_short_or_blank_tokens_are_config_errors(tmp_path):
    from hub.errors import ConfigError

    for token in ("   ", "short"):
        with pytest.raises(ConfigError, match="console"):
            config(tmp_path, token)
