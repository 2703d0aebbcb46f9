"""httpx's transport interface over one pooled aiohttp session: the export destinations' wire.

Destinations speak httpx (requests, responses, `httpx.MockTransport` in unit tests); the bytes travel
through aiohttp, whose HTTP/1.1 client costs a fifth of httpcore's CPU per request on ~100 KB bodies
(Braze /users/track at 75 users per request: bench/braze_export.py). Failures are mapped to the httpx
exception that tells the caller whether the request may have arrived, which `transport_failure`
(http_delivery.py) uses to decide whether a resend is safe: connect errors and connect timeouts mean
"not sent", anything after the connection was up means "may have been sent".
"""

from __future__ import annotations

import asyncio

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

# Headers aiohttp would add on its own; httpx already set the ones the request needs.
_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests over an aiohttp session opened on first use (in the running event loop)."""

    def __init__(self, max_connections: int, *, resolver: aiohttp.abc.AbstractResolver | None = None) -> None:
        self.max_connections = max_connections
        self.resolver = resolver  # e.g. public_network.PublicOnlyResolver: consulted on every new connection
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str | None, int | None], tuple[URL | None, aiohttp.BasicAuth | None]] = {}

    def _open(self) -> aiohttp.ClientSession:
        # httpx's own TLS settings (certifi, SSL_CERT_FILE).
        connector = aiohttp.TCPConnector(limit=self.max_connections, ssl=httpx.create_ssl_context(),
                                         resolver=self.resolver)
        # auto_decompress off: httpx decodes Content-Encoding itself when it reads the body.
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                              skip_auto_headers=_NO_AUTO_HEADERS)
        return self._session

    async def _proxy_for(self, url: URL) -> tuple[URL | None, aiohttp.BasicAuth | None]:
        """HTTP(S)_PROXY / NO_PROXY (and .netrc) for the URL's origin, as httpx honours them, looked up once.

        aiohttp's own `trust_env` looks them up in a thread on every request: a thread hop per POST.
        """
        origin = (url.scheme, url.host, url.port)
        if origin not in self._proxies:
            try:
                self._proxies[origin] = await asyncio.to_thread(get_env_proxy_for_url, url)
            except LookupError:
                self._proxies[origin] = (None, None)
        return self._proxies[origin]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        url = URL(str(request.url), encoded=True)
        return await self.send(request.method, url, request.headers.multi_items(), body, _timeout_of(request),
                               request)

    async def send(self, method: str, url: URL, headers: list[tuple[str, str]], body: bytes,
                   timeout: aiohttp.ClientTimeout, request: httpx.Request | None = None) -> httpx.Response:
        """One request from parts prepared once by the caller (`http_delivery.Poster`), without an httpx
        Request unless it fails (the exception carries one); `request` when the caller has it already."""
        session = self._session or self._open()
        proxy, proxy_auth = await self._proxy_for(url)
        try:
            async with session.request(method, url, data=body, headers=headers, proxy=proxy, proxy_auth=proxy_auth,
                                       allow_redirects=False, timeout=timeout) as answer:
                content = await answer.read()
                status, raw_headers = answer.status, answer.raw_headers
        except aiohttp.ClientConnectorError as err:  # refused, DNS, TLS handshake: nothing was sent
            raise httpx.ConnectError(str(err), request=request or _request(method, url, headers)) from err
        except aiohttp.ConnectionTimeoutError as err:  # no connection (pool or connect) in time
            raise httpx.ConnectTimeout(str(err) or "connect timeout",
                                       request=request or _request(method, url, headers)) from err
        except (aiohttp.SocketTimeoutError, asyncio.TimeoutError) as err:
            raise httpx.ReadTimeout(str(err) or "read timeout",
                                    request=request or _request(method, url, headers)) from err
        except aiohttp.InvalidURL as err:
            raise httpx.UnsupportedProtocol(str(err), request=request or _request(method, url, headers)) from err
        except aiohttp.ClientError as err:  # disconnected or reset after the request went out
            raise httpx.ReadError(f"{type(err).__name__}: {err}",
                                  request=request or _request(method, url, headers)) from err
        return httpx.Response(status, headers=raw_headers, content=content, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _request(method: str, url: URL, headers: list[tuple[str, str]]) -> httpx.Request:
    return httpx.Request(method, str(url), headers=headers)


def _timeout_of(request: httpx.Request) -> aiohttp.ClientTimeout:
    """httpx's per-request timeouts (set by the client) as aiohttp's."""
    return timeout_of(request.extensions.get("timeout") or {})


def timeout_of(timeouts: dict[str, float | None]) -> aiohttp.ClientTimeout:
    """httpx's timeouts ({"connect", "read", "write", "pool"}) as aiohttp's."""
    pool, connect = timeouts.get("pool"), timeouts.get("connect")
    return aiohttp.ClientTimeout(total=None, connect=None if pool is None or connect is None else pool + connect,
                                 sock_connect=connect, sock_read=timeouts.get("read"))
