"""The operator console under /console: overview, live event debugger, dead letter with replay, jobs, config."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.routing import BaseRoute

from personalize_hub.console.activity import Activity, prometheus_snapshot
from personalize_hub.console.app import console_routes
from personalize_hub.console.auth import ConsoleAuth
from personalize_hub.console.backend import ConsoleBackend
from personalize_hub.console.config import ConsoleConfig
from personalize_hub.console.redact import Redactor
from personalize_hub.console.ring import EventRing
from personalize_hub.console.tap import ConsoleTap

__all__ = ["Console", "ConsoleConfig"]


class Console:
    """One process's console: taps the hub's pipeline, samples its counters, serves the pages."""

    def __init__(self, hub: Any, *, bound_host: str, routes_by_source: dict[str, list[str]],
                 config_path: str | None = None):
        settings: ConsoleConfig = hub.config.console
        self.ring = EventRing(settings.ring_size)
        tap = ConsoleTap(self.ring, settings.delivered_per_sec)
        hub.pipeline.tap = tap
        self.redact = Redactor(settings.redact_fields)
        self.activity = Activity(lambda: {**prometheus_snapshot(), **tap.totals()})
        token = settings.token.get_secret_value() if settings.token else None
        self.auth = ConsoleAuth(token, bound_host)
        self.backend = ConsoleBackend(hub, self.activity, self.redact, routes_by_source, config_path)
        self._sampler: asyncio.Task[None] | None = None

    def routes(self) -> list[BaseRoute]:
        return console_routes(self.backend, self.ring, self.auth, self.redact)

    async def start(self) -> None:
        self.activity.sample()  # the windows count from here, not from whatever the process counted before
        self._sampler = asyncio.create_task(self.activity.run(), name="console:activity")

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
