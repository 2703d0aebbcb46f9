"""`hub run` under hostile clients on real loopback sockets: huge unfinished headers, slow-loris, stalled bodies,
too many connections. The hub's memory stays bounded, slow clients are dropped, a normal client is served.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fixtures.hub_process import running_hub

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]
HEADER_TIMEOUT, BODY_TIMEOUT, KEEP_ALIVE, MAX_CONNECTIONS = 2.0, 2.0, 1.0, 200


@pytest.fixture
def hub(tmp_path):
    config = yaml.safe_load((ROOT / "examples" / "webhook-to-file.yaml").read_text())
    config["http"] = {"limits": {
        "header_timeout_secs": HEADER_TIMEOUT, "body_timeout_secs": BODY_TIMEOUT, "keep_alive_secs": KEEP_ALIVE,
        "max_connections": MAX_CONNECTIONS}}
    with running_hub(config, tmp_path, {"HUB_DATA_DIR": str(tmp_path), "SEGMENT_WRITE_KEY": "wk-test"}) as hub:
        yield hub.pid, hub.port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def closed_by_peer(sock: socket.socket, within_secs: float) -> bool:
    """True when the server closes the connection (EOF or reset) within the time; data it sends is skipped."""
    deadline = time.monotonic() + within_secs
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


def serves_normally(port: int) -> bool:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200


def test_megabytes_of_unfinished_headers_are_cut_off_and_memory_stays_bounded(hub):
    pid, port = hub
    before = rss_mb(pid)
    chunk = b"X-Padding: " + b"a" * 65_000 + b"\r\n"
    closed: list[bool] = []

    def flood() -> None:
        sent = 0
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"POST /v1/track HTTP/1.1\r\nHost: hub\r\n")
            try:
                while sent < 4 * 1024 * 1024:  # 4 MB of headers that never end (loopback buffers hold MBs)
                    sock.sendall(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                closed.append(True)
                return
            closed.append(closed_by_peer(sock, 5))

    threads = [threading.Thread(target=flood) for _ in range(50)]
    for thread in threads:
        thread.start()
    peak = before
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss_mb(pid))
        time.sleep(0.05)
    for thread in threads:
        thread.join(30)
    print(f"hub RSS {before:.0f} MB before, {peak:.0f} MB peak during 50 x 4 MB of unfinished headers")
    # Every connection was closed: headers are capped at 64 KiB; the rest sat in kernel socket buffers.
    assert closed == [True] * 50
    assert peak - before < 40, f"RSS grew from {before:.0f} to {peak:.0f} MB"
    assert serves_normally(port)


def test_slow_loris_and_stalled_bodies_are_dropped_while_a_normal_client_is_served(hub):
    _, port = hub
    loris = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
    stalled = []
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /v1/track HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"userId\"")
        stalled.append(sock)
    try:
        started = time.monotonic()
        for _ in range(3):  # one header line per connection every 0.5 s: never a whole request
            for sock in loris:
                sock.sendall(b"X-Slow: 1\r\n")
            assert serves_normally(port)  # meanwhile, a normal client
            time.sleep(0.5)
        loris_closed = sum(closed_by_peer(s, HEADER_TIMEOUT + 3) for s in loris)
        stalled_closed = sum(closed_by_peer(s, BODY_TIMEOUT + 3) for s in stalled)
        elapsed = time.monotonic() - started
        print(f"{loris_closed}/100 slow-loris and {stalled_closed}/20 stalled bodies closed after {elapsed:.1f}s")
        assert loris_closed == 100 and stalled_closed == 20
        assert serves_normally(port)
    finally:
        for sock in loris + stalled:
            sock.close()


def test_connections_over_the_cap_are_closed_at_once(hub):
    _, port = hub
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONNECTIONS + 20)]
    try:
        closed = sum(closed_by_peer(s, 0.05) for s in held[-40:])  # the cap is met before these
        assert closed >= 20
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert serves_normally(port)  # the cap frees as connections close


def test_an_idle_keep_alive_connection_is_closed_and_a_second_request_gets_the_header_deadline(hub):
    _, port = hub
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert closed_by_peer(sock, KEEP_ALIVE + 2)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a second request that never finishes its headers
        assert closed_by_peer(sock, HEADER_TIMEOUT + 2)

