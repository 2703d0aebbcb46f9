"""`hub run` over a real socket: compressed, hostile and signed bodies; clear 4xx, nothing else lost, RSS bounded."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import zlib
from pathlib import Path

import httpx
import pytest

from tests.fixtures.hub_process import running_hub

pytestmark = pytest.mark.integration

WRITE_KEY, SHARED_SECRET = "wk-int", "segment-shared-secret"
MP_AUTH = ("mp-key", "mp-secret")


@pytest.fixture
def hub_process(tmp_path):
    config = {
        "sources": [
            {"type": "segment_webhook", "id": "web", "write_keys": ["${SEGMENT_WRITE_KEY}"],
             "shared_secrets": ["${SEGMENT_SHARED_SECRET}"]},
            {"type": "mparticle_webhook", "id": "mp", "api_key": MP_AUTH[0], "api_secret": MP_AUTH[1]},
        ],
        "destinations": [{"type": "file", "id": "out", "path": str(tmp_path / "out.jsonl")}],
        "dead_letter": {"type": "file", "id": "dead_letter", "path": str(tmp_path / "dlq.jsonl")},
        "identity": {"enabled": False}, "mapping": {"enabled": False},
    }
    env = {"SEGMENT_WRITE_KEY": WRITE_KEY, "SEGMENT_SHARED_SECRET": SHARED_SECRET}
    with running_hub(config, tmp_path, env) as hub:
        yield hub.url, tmp_path, hub.pid


def peak_rss_bytes(pid: int) -> int:
    """The process's high-water resident set (VmHWM), which no later release of memory hides."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def delivered(data_dir: Path) -> list[str]:
    path = data_dir / "out.jsonl"
    return [json.loads(line)["source"]["message_id"] for line in path.read_text().splitlines()] if path.exists() else []


def batch(*ids: str) -> bytes:
    return json.dumps({"batch": [{"type": "track", "event": "Product Viewed", "userId": "u1", "messageId": i,
                                  "properties": {"product_id": "p1"}} for i in ids]}).encode()


def gzip_bomb(inflated_mib: int) -> bytes:
    packer = zlib.compressobj(9, wbits=16 + zlib.MAX_WBITS)
    block = b" " * (1 << 20)
    return b"".join(packer.compress(block) for _ in range(inflated_mib)) + packer.flush()


def test_hostile_bodies_get_a_clear_4xx_and_lose_nothing_else(hub_process):
    base, data_dir, pid = hub_process
    with httpx.Client(base_url=base, auth=(WRITE_KEY, "")) as client:
        gz = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        assert client.post("/v1/batch", content=gzip.compress(batch("warm")), headers=gz).status_code == 200
        baseline = peak_rss_bytes(pid)

        bomb = gzip_bomb(384)
        assert len(bomb) < 400 * 1024  # under the 500 KB wire limit: only the inflated size can stop it
        answer = client.post("/v1/batch", content=bomb, headers=gz)
        assert answer.status_code == 413 and "inflated body exceeds" in answer.json()["message"]

        answer = client.post("/v1/batch", content=gzip.compress(batch("cut"))[:-20], headers=gz)
        assert answer.status_code == 400 and answer.json()["code"] == "corrupt_encoding"
        assert "truncated" in answer.json()["message"]
        answer = client.post("/v1/batch", content=gzip.compress(b"<html>not json</html>"), headers=gz)
        assert answer.status_code == 400 and answer.json()["code"] == "invalid_json"
        answer = client.post("/v1/batch", content=batch("br"), headers={"Content-Encoding": "br"})
        assert answer.status_code == 415 and "'br'" in answer.json()["message"]
        answer = client.post("/v2/events", content=bomb, headers=gz, auth=MP_AUTH)
        assert answer.status_code == 413

        assert client.post("/v1/batch", content=gzip.compress(batch("after-1", "after-2")),
                           headers=gz).json()["accepted"] == 2
        assert client.get("/healthz").status_code == 200
    assert delivered(data_dir) == ["warm", "after-1", "after-2"]
    growth = peak_rss_bytes(pid) - baseline
    assert growth < 48 * 2**20, f"peak RSS grew by {growth / 2**20:.0f} MiB for a 384 MiB bomb"


def test_signed_webhook_single_and_array_over_http(hub_process):
    base, data_dir, _ = hub_process

    def post(body: bytes, secret: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Signature"] = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
        return httpx.post(f"{base}/v1/webhook", content=body, headers=headers)

    one = {"type": "track", "event": "Order Completed", "userId": "u9", "messageId": "s1",
           "properties": {"products": [{"product_id": "p1"}, {"product_id": "p2"}]}}
    many = [{"type": "identify", "userId": "u9", "anonymousId": "a9", "messageId": "s2"},
            {"type": "page", "anonymousId": "a9", "messageId": "s3", "name": "Home"},
            {"type": "track", "userId": "u9", "messageId": "s4"}]  # no event name: rejected alone
    assert post(json.dumps(one).encode(), SHARED_SECRET).json()["accepted"] == 1
    answer = post(json.dumps(many).encode(), SHARED_SECRET)
    assert answer.status_code == 200 and (answer.json()["accepted"], answer.json()["rejected"]) == (2, 1)
    assert post(json.dumps(one).encode(), "wrong-secret").status_code == 401
    assert post(json.dumps(one).encode(), None).status_code == 401
    assert delivered(data_dir) == ["s1", "s2", "s3"]
