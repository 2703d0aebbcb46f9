"""A minimal keep-alive HTTP/1.1 client for one origin: small POSTs, each answer read whole (lean PutEvents path).

aiohttp costs ~150 µs of CPU per PutEvents call here (request and response objects, a writer task, header
multidicts, cookie and redirect handling), more than the call's own work. A PutEvents exchange is one small
POST with a Content-Length and a short answer (docs/reference/personalize-api.md#putevents), so this writes
the request in one `transport.write` and parses the answer in place (status line, headers, a Content-Length
or chunked body; RFC 9112). Errors surface as ConnectionError / TimeoutError (OSError), which the
destination classifies as retryable. Proxies are aiohttp's business: the caller uses this only without one.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

_MAX_HEADER_BYTES = 64 * 1024  # an answer whose headers do not end within this is not a Personalize answer


class HttpAnswer:
    """Status, headers (names lower-cased) and the whole body of one answer."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self._buffer = bytearray()
        self._answer: asyncio.Future[HttpAnswer] | None = None
        self._head: tuple[int, dict[str, str]] | None = None
        self._body_end: int | None = None  # buffer offset where a Content-Length body ends
        self._chunked = False
        self._until_close = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self._answer
        if answer is not None and not answer.done():
            if self._until_close and self._head is not None:  # a body delimited by the connection's end
                answer.set_result(HttpAnswer(*self._head, bytes(self._buffer)))
            else:
                answer.set_exception(ConnectionError(f"connection closed before the answer ended: {exc or 'EOF'}"))

    def send(self, request: bytes) -> asyncio.Future[HttpAnswer]:
        assert self.transport is not None
        self._buffer.clear()
        self._head, self._body_end, self._chunked, self._until_close = None, None, False, False
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._answer

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self.reusable = False  # bytes nobody asked for: this connection's framing is lost
            return
        self._buffer += data
        try:
            self._parse()
        except ValueError as err:
            self.reusable = False
            self._answer.set_exception(ConnectionError(f"malformed HTTP answer: {err}"))

    def _parse(self) -> None:
        buffer = self._buffer
        if self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEADER_BYTES:
                    raise ValueError("headers too long")
                return
            lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            del buffer[:end + 4]
            version, _, rest = lines[0].partition(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError(f"status line {lines[0][:60]!r}")
            status = int(rest[:3])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, colon, value = line.partition(":")
                if not colon:
                    raise ValueError(f"header line {line[:60]!r}")
                name = name.strip().lower()
                headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
            if 100 <= status < 200:  # an interim answer (we send no Expect): the real one follows
                self._parse()
                return
            self._head = (status, headers)
            if headers.get("connection", "").lower() == "close" or version == "HTTP/1.0":
                self.reusable = False
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._chunked = True
            elif "content-length" in headers:
                self._body_end = int(headers["content-length"])
            elif status in (204, 304):
                self._body_end = 0
            else:
                self._until_close, self.reusable = True, False
        if self._chunked:
            self._parse_chunked()
        elif self._body_end is not None and len(buffer) >= self._body_end:
            if len(buffer) > self._body_end:
                self.reusable = False
            body = bytes(buffer[:self._body_end])
            self._answer.set_result(HttpAnswer(*self._head, body))  # type: ignore[union-attr, misc]

    def _parse_chunked(self) -> None:
        body = bytearray()
        position, buffer = 0, self._buffer
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                return
            size = int(bytes(buffer[position:line_end]).split(b";")[0].strip() or b"x", 16)
            if size == 0:  # the last chunk; trailers (if any) end with an empty line
                if buffer.find(b"\r\n\r\n", line_end) < 0:
                    return
                self._answer.set_result(HttpAnswer(*self._head, bytes(body)))  # type: ignore[union-attr, misc]
                return
            start = line_end + 2
            if len(buffer) < start + size + 2:
                return
            body += buffer[start:start + size]
            position = start + size + 2

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Http1Pool:
    """Keep-alive connections to one origin (`http://` or `https://host[:port]`), at most `limit` at once."""

    def __init__(self, origin: str, *, limit: int, connect_timeout_secs: float, read_timeout_secs: float,
                 ssl_context: ssl.SSLContext | None = None):
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {origin!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        self._connect_timeout, self._read_timeout = connect_timeout_secs, read_timeout_secs
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(limit)
        self._open: set[_Connection] = set()

    async def post(self, target: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        """POST `body` to `target` (path and query) with `headers` as given plus Content-Length; the answer read whole.

        `headers` must hold Host, as on the wire (botocore sends it first).
        """
        head = "".join([f"POST {target} HTTP/1.1\r\n", *(f"{k}: {v}\r\n" for k, v in headers.items()),
                        f"Content-Length: {len(body)}\r\n\r\n"])
        request = head.encode("latin-1") + body
        async with self._slots:
            connection = await self._connection()
            try:
                async with asyncio.timeout(self._read_timeout):
                    answer = await connection.send(request)
            except BaseException:
                connection.close()
                self._open.discard(connection)
                raise
            if connection.reusable and not connection.closed:
                self._idle.append(connection)
            else:
                connection.close()
                self._open.discard(connection)
            return answer

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
            self._open.discard(connection)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            _, connection = await loop.create_connection(
                _Connection, self._host, self._port, ssl=self._ssl,
                server_hostname=self._host if self._ssl else None)
        self._open.add(connection)
        return connection

    async def close(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()
