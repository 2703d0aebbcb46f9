"""What the three Personalize destinations share: the encoder, the request path, config-problem logging."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field

from connectors.aws import AwsClients
from connectors.destinations.personalize.api import IngestApi, RequestPath, open_ingest_api
from connectors.destinations.personalize.encoder import PersonalizeEncoder, PersonalizeEncoding
from connectors.destinations.personalize.errors import ServiceMisconfigured
from hub.connector import Context, Destination, DestinationConfig, EncodeResult
from hub.events import Event

log = logging.getLogger(__name__)



def from_env(name: str) -> Any:
    """A config default read from the environment variable the examples document (empty if unset)."""
    return lambda: os.environ.get(name, "")


class PersonalizeDestinationConfig(DestinationConfig):
    """Settings every Personalize destination has."""

    request_path: RequestPath = Field(
        "lean",
        description=(
            "`lean`: botocore's credentials and SigV4 signer, the body written in botocore's exact wire form, "
            "sent over a pooled keep-alive HTTP client (a third of aiobotocore's CPU per call, "
            "bench/putevents_request_path.py); `botocore`: the generic aiobotocore client, as a fallback."
        ),
    )


class PersonalizeDestination(Destination):
    """A destination sending one personalize-events operation per batch of encoded records.

    It takes the events its encoder turns into records of its kind (a track "Product Updated" becomes an
    item: PutItems), so `kinds:` names record kinds.
    """

    operation: ClassVar[str]
    config: PersonalizeDestinationConfig

    def __init__(self, config: PersonalizeDestinationConfig, context: Context):
        super().__init__(config, context)
        self._api: IngestApi | None = None
        self.encoder = PersonalizeEncoder(context.resources.get(PersonalizeEncoding))
        self._kinds = config.routed_kinds()

    def accepts(self, event: Event) -> bool:
        return self.encoder.kind_of(event) in self._kinds

    def encode(self, events: Sequence[Event]) -> list[EncodeResult]:
        return self.encoder.encode(events)

    async def start(self) -> None:
        if self._api is None:
            self._api = await open_ingest_api(self.context.resource(AwsClients), self.config.request_path)

    async def call(self, params: Mapping[str, Any]) -> None:
        """One API call; logs configuration problems loudly (they are retried, so nothing is lost)."""
        if self._api is None:
            await self.start()
        assert self._api is not None
        try:
            await self._api.call(self.operation, params)
        except ServiceMisconfigured as err:
            # Every retried batch fails alike: telemetry's RepeatFilter folds the repeats into one line a minute.
            log.error(
                "destination %s: %s failed: %s. Check %s and the AWS credentials; records are held "
                "(outcome RETRY, sources do not acknowledge them) until this is fixed",
                self.config.id, self.operation, err, self.target_description(),
            )
            raise

    def target_description(self) -> str:
        """Which configured resource the calls address, for the misconfiguration log line."""
        return "the configured resource"
