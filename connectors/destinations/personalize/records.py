"""PutItems / PutUsers shared logic: ten records per call, repeated updates of one id coalesced, latest wins."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field, model_validator

from connectors.destinations.personalize.base import (
    PersonalizeDestination,
    PersonalizeDestinationConfig,
    from_env,
)
from connectors.destinations.personalize.unit import PersonalizeRecord

log = logging.getLogger(__name__)

# PutItems/PutUsers datasetArn: ≤256 characters matching arn:…:personalize:…
# (docs/reference/personalize-api.md#putitems-and-putusers, #field-constraints).
DATASET_ARN_PATTERN = re.compile(r"arn:([a-z\d-]+):personalize:.*:.*:.+")
# A recommender (domain dataset group) is `…:recommender/<name>`, a campaign `…:campaign/<name>`
# (docs/reference/personalize-api.md#arns).
RECOMMENDER_RESOURCE = ":recommender/"


def is_recommender_arn(arn: str) -> bool:
    """Whether an ARN names a recommender rather than a campaign (GetRecommendations takes either)."""
    return RECOMMENDER_RESOURCE in arn


def dataset_arn_field(env: str, dataset: str) -> Any:
    """The `dataset_arn` field of a records destination, defaulting to environment variable `env`."""
    return Field(
        default_factory=from_env(env),
        max_length=256,
        description=f"ARN of the {dataset} dataset (CreateDataset); default: ${env}.",
    )


class PersonalizeRecordsConfig(PersonalizeDestinationConfig):
    """Settings of a destination that upserts dataset records (items, users)."""

    dataset_arn_env: ClassVar[str]
    dataset_arn: str

    @model_validator(mode="after")
    def _dataset_arn_valid(self) -> PersonalizeRecordsConfig:
        if not self.dataset_arn:
            raise ValueError(f"dataset_arn is required (or set {self.dataset_arn_env})")
        if not DATASET_ARN_PATTERN.fullmatch(self.dataset_arn):
            raise ValueError(f"dataset_arn {self.dataset_arn!r} is not a Personalize dataset ARN")
        return self


class PersonalizeRecords(PersonalizeDestination):
    """Upserts records of one dataset; `list_key` and `id_key` name the request members."""

    list_key: ClassVar[str]
    id_key: ClassVar[str]
    config: PersonalizeRecordsConfig

    def partition_key(self, unit: PersonalizeRecord) -> str:
        # One partition: every update of an id stays in order, repeated updates meet in the same batch
        # to be coalesced, and batches fill to 10. One call in flight is plenty for a 10 requests/s quota.
        return ""

    def target_description(self) -> str:
        return f"dataset_arn {self.config.dataset_arn!r} (an ACTIVE dataset) and aws.personalize_endpoint_url"

    async def send(self, batch: Sequence[PersonalizeRecord]) -> None:
        id_key = self.id_key
        latest: dict[str, dict] = {}  # id → its newest record in the batch, in order of last update
        for unit in batch:  # finished by the encoder: every record has its id
            record_id = unit.record[id_key]
            latest.pop(record_id, None)
            latest[record_id] = unit.record
        superseded = len(batch) - len(latest)
        if superseded:
            # Personalize keeps only the newest record per id (docs/reference/personalize-api.md#putitems-and-putusers):
            # the older ones are settled as delivered with the call that carries their replacement.
            log.debug("destination %s: %d superseded updates coalesced", self.config.id, superseded)
        await self.call({"datasetArn": self.config.dataset_arn, self.list_key: list(latest.values())})
