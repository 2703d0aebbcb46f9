"""Assembles a running hub from its config: destinations and runners, dead letter, stages, sources."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from connectors.aws import AwsClients
from connectors.destinations.personalize.encoder import PersonalizeEncoding
from connectors.destinations.personalize.mapping import Mapper
from connectors.destinations.personalize.readiness import ReadinessRecorder
from hub.connector import Context, Destination, Source, Stage, WebhookSource
from hub.delivery.dead_letter import DeadLetter
from hub.delivery.runner import DestinationRunner
from hub.events import set_timestamp_window
from hub.pipeline import Pipeline
from personalize_hub import registry

log = logging.getLogger(__name__)


def build_stages(config: Any) -> list[Stage]:
    """The stages between decoding and routing: identity. Each destination then encodes what is routed to
    it (the Personalize destinations, and `file` / `kafka_topic` with `encoding: personalize`, map and check
    with the `mapping:` and `schemas:` sections lent by `provide`)."""
    return [config.identity.build()] if config.identity.enabled else []


def personalize_encoding(config: Any) -> PersonalizeEncoding:
    """The mapping and dataset schemas the Personalize encoders share. ConfigError when the mapping does not
    fit the schemas: a problem only assembling the parts finds, so `hub check` asks for it too."""
    encoding = PersonalizeEncoding(config.mapping, config.schemas.load())
    if config.mapping.enabled:
        Mapper(encoding.mapping, encoding.schemas)
    return encoding


def provide(context: Context, config: Any) -> None:
    """Lend the connectors what they share: AWS clients (unless the caller lent its own) and the
    Personalize encoding settings."""
    context.resources.setdefault(AwsClients, AwsClients(config.aws))  # opens nothing until a connector asks
    context.resources[PersonalizeEncoding] = personalize_encoding(config)


class Hub:
    """One hub process: `start()` opens every connector, `stop()` drains and closes them."""

    def __init__(self, config: Any, context: Context | None = None):
        self.config = config
        set_timestamp_window(config.timestamps.window())  # every decoder applies it (hub/events.py)
        self.context = context or Context()
        self._owns_aws = AwsClients not in self.context.resources
        provide(self.context, config)
        retry = self.context.retry = config.retry.policy()  # one budget: runners and pulling sources
        self.destinations: list[Destination] = [
            registry.build_destination(c, self.context) for c in config.destinations
        ]
        self.runners = [DestinationRunner(d, d.config.batch_policy(), retry) for d in self.destinations]
        self.dead_letter_sink = registry.build_destination(config.dead_letter, self.context)
        self.dead_letter = DeadLetter(self.dead_letter_sink)  # type: ignore[arg-type]
        self.readiness = ReadinessRecorder(config.readiness.build())
        self.pipeline = Pipeline(build_stages(config), self.runners, self.dead_letter, self.readiness)
        self.sources: list[Source] = [registry.build_source(c, self.context) for c in config.sources]
        self._source_tasks: list[asyncio.Task[None]] = []
        self.failed_sources: list[str] = []
        self.started = False

    @property
    def webhook_sources(self) -> list[WebhookSource]:
        return [s for s in self.sources if isinstance(s, WebhookSource)]

    async def start_delivery(self) -> None:
        """Open the dead letter and destinations, without taking input (used alone by `hub replay`)."""
        await self.dead_letter_sink.start()
        for runner in self.runners:
            await runner.start()

    async def start(self) -> None:
        await self.start_delivery()
        for source in self.sources:
            task = asyncio.create_task(source.run(self.pipeline), name=f"source:{source.config.id}")
            task.add_done_callback(self._source_stopped)
            self._source_tasks.append(task)
        self.started = True

    def _source_stopped(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # A source that died consumes nothing more: /healthz turns 503 so the orchestrator restarts us.
            self.failed_sources.append(task.get_name().removeprefix("source:"))
            log.error("source %s stopped", task.get_name(), exc_info=task.exception())

    async def stop(self) -> None:
        """Stop taking input, deliver what was accepted, then close everything."""
        self.started = False
        for task in self._source_tasks:
            task.cancel()
        await asyncio.gather(*self._source_tasks, return_exceptions=True)
        for source in self.sources:
            await source.close()
        for runner in self.runners:
            await runner.close()
        await self.dead_letter_sink.close()
        if self._owns_aws:
            await self.context.resource(AwsClients).close()
        await self.readiness.close()
        for stage in self.pipeline.stages:  # e.g. the identity store's connection
            close = getattr(stage, "close", None)
            if close is not None:
                await close()
