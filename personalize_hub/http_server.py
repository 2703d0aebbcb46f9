"""`hub run`'s HTTP server: uvicorn on h11, with limits on header size, header and body time, and connections.

uvicorn bounds idle keep-alive (`timeout_keep_alive`) and, on h11, the bytes of unfinished headers
(`h11_max_incomplete_event_size`; its httptools parser has no such limit, hence h11). It has no time
limit on receiving headers or a body, and accepts any number of connections: 400 slow-loris
connections were held forever, and 50 connections of 8 MB unfinished headers (over httptools) took
the hub from 92 to 499 MB. `GuardedH11Protocol` adds the missing limits per connection.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import h11
import uvicorn
from pydantic import BaseModel, ConfigDict, Field
from uvicorn.protocols.http.h11_impl import H11Protocol


class HttpLimits(BaseModel):
    """What one client may hold of the server; every limit closes the connection, never the process."""

    model_config = ConfigDict(extra="forbid")

    max_header_bytes: int = Field(
        64 * 1024, ge=4096, description="Request line + headers; more is answered 400 and the connection closed.")
    header_timeout_secs: float = Field(
        10.0, gt=0, description="From the first byte of a request (or the connection) to its last header.")
    body_timeout_secs: float = Field(
        30.0, gt=0, description="From the last header to the last body byte (webhook bodies are ≤ 500 KB).")
    keep_alive_secs: float = Field(5.0, gt=0, description="An idle keep-alive connection is closed after this.")
    max_connections: int = Field(
        1024, ge=1, description="Open connections; one more is closed at once (keep it below the open-files limit).")


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each phase of a request and a cap on connections.

    h11's `their_state` says the phase: IDLE (headers incomplete), SEND_BODY (body incomplete), else
    the request is whole and the app owns the time.
    """

    limits: ClassVar[HttpLimits] = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: Any = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.logger.warning("closing a connection over http.limits.max_connections=%d", self.limits.max_connections)
            transport.abort()
            return
        self._enter(h11.IDLE)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.transport.is_closing():
            self._enter(self.conn.their_state)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._cancel()  # between requests the keep-alive timeout applies
        self._phase = None

    def _enter(self, phase: Any) -> None:
        if phase is self._phase:
            return  # still in the same phase: its deadline runs on
        if phase is h11.IDLE and self._phase is None and self.timeout_keep_alive_task is not None:
            return  # idle between requests: the keep-alive timer owns it until bytes arrive
        self._cancel()
        self._phase = phase
        timeout = {h11.IDLE: self.limits.header_timeout_secs, h11.SEND_BODY: self.limits.body_timeout_secs}.get(phase)
        if timeout is not None:
            self._deadline = self.loop.call_later(timeout, self._expired, phase)

    def _expired(self, phase: Any) -> None:
        self._deadline = None
        if self.conn.their_state is phase and not self.transport.is_closing():
            what = "headers" if phase is h11.IDLE else "body"
            self.logger.info("closing %s: request %s not received in time", self.client, what)
            self.transport.abort()

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


GRACEFUL_SHUTDOWN_SECS = 10  # how long a stopping server waits for open requests to finish


def server_config(app: Any, limits: HttpLimits, *, host: str, port: int, log_level: str) -> uvicorn.Config:
    """The uvicorn config `hub run` serves with."""
    protocol = type("HubHttpProtocol", (GuardedH11Protocol,), {"limits": limits})
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                          http=protocol, h11_max_incomplete_event_size=limits.max_header_bytes,
                          timeout_keep_alive=limits.keep_alive_secs,
                          # Open streams (the console's live events) would hold shutdown forever; a webhook
                          # request cut off here was not answered, so its sender retries: nothing is lost.
                          timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECS)
