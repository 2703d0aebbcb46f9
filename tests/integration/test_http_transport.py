"""The export destinations' aiohttp wire under httpx, against a real socket: answers, and failures told apart.

Whether a failed request may have arrived decides whether a send without an idempotency key is
repeated (http_delivery.transport_failure), so each kind of failure is provoked for real.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from connectors.destinations.http_delivery import DELIVERY_UNKNOWN, Poster, http_client, transport_failure
from hub.errors import RejectedError, RetryableError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head, await reader.readexactly(length)


@pytest.fixture
async def server() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        started = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(started)
        return f"http://127.0.0.1:{started.sockets[0].getsockname()[1]}"

    yield start
    for started in servers:
        started.close()
        await started.wait_closed()


async def test_a_request_arrives_as_sent_and_the_answer_is_decoded(server):
    seen: list[tuple[bytes, bytes]] = []

    async def answer(reader, writer):
        seen.append(await _read_request(reader))
        body = gzip.compress(b'{"message":"success"}')
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                     b"X-RateLimit-Remaining: 7\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    url = await server(answer)
    poster = Poster(f"{url}/users/track", {"Authorization": "Bearer k", "Content-Type": "application/json"}, 5.0, 2)
    try:
        response = await poster.post(b'{"attributes":[]}')
    finally:
        await poster.aclose()
    assert response.status_code == 201 and response.json() == {"message": "success"}
    assert response.headers["x-ratelimit-remaining"] == "7"
    head, body = seen[0]
    assert head.startswith(b"POST /users/track HTTP/1.1\r\n") and body == b'{"attributes":[]}'
    assert b"\r\nauthorization: bearer k\r\n" in head.lower()


async def test_redirects_are_answers_not_followed(server):
    async def moved(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 301 Moved Permanently\r\nLocation: http://elsewhere.invalid/\r\n"
                     b"Content-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with http_client(await server(moved), {}, 5.0, 2) as client:
        response = await client.post("/v1/batch", content=b"{}")
    assert response.status_code == 301 and response.headers["location"] == "http://elsewhere.invalid/"


async def test_nothing_listening_is_a_request_never_sent():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the request: connection refused
    poster = Poster(f"http://127.0.0.1:{port}/x", {}, 5.0, 1)
    with pytest.raises(httpx.ConnectError) as failure:
        await poster.post(b"{}")
    await poster.aclose()
    assert isinstance(transport_failure(failure.value, resend_safe=False), RetryableError)


async def test_a_connection_dropped_after_the_request_may_have_delivered_it(server):
    async def hang_up(reader, writer):
        await _read_request(reader)
        writer.close()

    poster = Poster(f"{await server(hang_up)}/campaigns/trigger/send", {}, 5.0, 1)
    with pytest.raises(httpx.TransportError) as failure:
        await poster.post(b"{}")
    await poster.aclose()
    assert not isinstance(failure.value, (httpx.ConnectError, httpx.ConnectTimeout))
    unsafe = transport_failure(failure.value, resend_safe=False)
    assert isinstance(unsafe, RejectedError) and unsafe.reason == DELIVERY_UNKNOWN
    assert isinstance(transport_failure(failure.value, resend_safe=True), RetryableError)


async def test_no_answer_in_time_is_a_read_timeout(server):
    release = asyncio.Event()

    async def silent(reader, writer):
        await _read_request(reader)
        await release.wait()
        writer.close()

    poster = Poster(f"{await server(silent)}/x", {}, 0.2, 1)
    try:
        with pytest.raises(httpx.ReadTimeout):
            await poster.post(b"{}")
    finally:
        release.set()
        await poster.aclose()
