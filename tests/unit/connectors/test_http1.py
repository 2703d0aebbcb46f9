"""The lean HTTP/1.1 pool: framing of answers (Content-Length, chunked, close-delimited), keep-alive reuse, failures."""

from __future__ import annotations

import asyncio

import pytest

from connectors.http1 import Http1Pool


class ScriptedServer:
    """A raw TCP server: reads each request (head + Content-Length body), answers with the next scripted bytes.

    An answer of None closes the connection without answering.
    """

    def __init__(self, answers: list[bytes | None]):
        self.answers = answers
        self.requests: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if answer is None:
                    break
                for piece in (answer[:7], answer[7:20], answer[20:]):  # arrives in pieces, as TCP may deliver it
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0)
                if b"connection: close" in answer.lower() or b"content-length" not in answer.lower() \
                        and b"chunked" not in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve():
    servers = []

    async def start(answers):
        scripted = ScriptedServer(answers)
        server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return scripted, Http1Pool(f"http://127.0.0.1:{port}", limit=4, connect_timeout_secs=2, read_timeout_secs=2)

    yield start
    for server in servers:
        server.close()


async def test_content_length_answers_reuse_one_connection_and_the_request_is_written_as_given(serve):
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n"
    error = b'HTTP/1.1 400 Bad Request\r\nX-Amzn-ErrorType: InvalidInputException\r\nContent-Length: 13\r\n\r\n{"message":1}'
    server, pool = await serve([ok, error, ok])
    headers = {"Host": "h", "X-Amz-Date": "20260102T030405Z"}
    answers = [await pool.post("/events", headers, body) for body in (b"{}", b'{"a": 1}', b"")]
    await pool.close()
    assert [(a.status, a.body) for a in answers] == [(200, b""), (400, b'{"message":1}'), (200, b"")]
    assert answers[1].headers["x-amzn-errortype"] == "InvalidInputException"
    assert server.connections == 1
    assert server.requests[1] == (b"POST /events HTTP/1.1\r\nHost: h\r\nX-Amz-Date: 20260102T030405Z\r\n"
                                  b"Content-Length: 8\r\n\r\n{\"a\": 1}")


async def test_chunked_and_close_delimited_answers_are_read_whole(serve):
    chunked = (b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\n<html\r\n7;ext=1\r\n>down</\r\n0\r\nTrailer: x\r\n\r\n")
    closing = b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\nupstream gone"
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server, pool = await serve([chunked, closing, interim])
    first = await pool.post("/e", {"Host": "h"}, b"x")
    second = await pool.post("/e", {"Host": "h"}, b"x")
    third = await pool.post("/e", {"Host": "h"}, b"x")
    await pool.close()
    assert (first.status, first.body) == (503, b"<html>down</")
    assert (second.status, second.body) == (502, b"upstream gone")
    assert (third.status, third.body) == (200, b"ok")
    assert server.connections == 2  # the close-delimited answer ended its connection


async def test_a_connection_closed_without_an_answer_is_a_connection_error_and_the_next_call_reconnects(serve):
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    server, pool = await serve([None, ok])
    with pytest.raises(ConnectionError):
        await pool.post("/e", {"Host": "h"}, b"x")
    assert (await pool.post("/e", {"Host": "h"}, b"x")).status == 200
    await pool.close()
    assert server.connections == 2


async def test_no_answer_in_time_is_a_timeout_and_nothing_is_reused():
    async def never(reader, writer):
        await reader.read(1 << 16)
        await asyncio.sleep(5)

    slow = await asyncio.start_server(never, "127.0.0.1", 0)
    pool = Http1Pool(f"http://127.0.0.1:{slow.sockets[0].getsockname()[1]}", limit=1, connect_timeout_secs=1,
                     read_timeout_secs=0.2)
    with pytest.raises(TimeoutError):
        await pool.post("/e", {"Host": "h"}, b"x")
    assert pool._idle == [] and not pool._open
    await pool.close()
    slow.close()


async def test_a_refused_connection_is_an_os_error():
    pool = Http1Pool("http://127.0.0.1:9", limit=1, connect_timeout_secs=1, read_timeout_secs=1)
    with pytest.raises(OSError):
        await pool.post("/e", {"Host": "h"}, b"x")
