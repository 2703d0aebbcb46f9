"""What the three Personalize destinations share: request path, config-problem logging, per-member rejects."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field

from connectors.destinations.personalize.api import IngestApi, RequestPath, open_ingest_api
from connectors.destinations.personalize.errors import ServiceMisconfigured
from hub.connector import Destination, DestinationConfig
from hub.errors import PartialFailure, RejectedError, RetryableError
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
    """A destination sending one personalize-events operation per batch."""

    operation: ClassVar[str]
    config: PersonalizeDestinationConfig

    def __init__(self, config: PersonalizeDestinationConfig, context: Any):
        super().__init__(config, context)
        self._api: IngestApi | None = None

    async def start(self) -> None:
        if self._api is None:
            if self.context.aws is None:
                raise RuntimeError("Context.aws is not set: the hub runtime builds it from the `aws` config section")
            self._api = await open_ingest_api(self.context.aws, self.config.request_path)

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

    async def call_for_valid(
        self, batch: Sequence[Event], invalid: Mapping[int, RejectedError], params: Mapping[str, Any] | None
    ) -> None:
        """Send `params` (built from the members not in `invalid`) and settle the invalid ones as rejected.

        Without invalid members the call's error is the batch's. With some, a PartialFailure names them;
        the others share the call's fate, and a rejected call with several of them is retried as its own
        batch so that the runner bisects it.
        """
        if not invalid:
            assert params is not None
            await self.call(params)
            return
        others = [i for i in range(len(batch)) if i not in invalid]
        if params is None or not others:
            raise PartialFailure(rejected=invalid)
        try:
            await self.call(params)
        except RetryableError as err:
            raise PartialFailure(rejected=invalid, retry={i: err for i in others}) from None
        except RejectedError as err:
            if len(others) == 1:
                raise PartialFailure(rejected={**invalid, others[0]: err}) from None
            split = RetryableError(f"rejected as a whole, to be bisected: {err}")
            raise PartialFailure(rejected=invalid, retry={i: split for i in others}) from None
        raise PartialFailure(rejected=invalid)
