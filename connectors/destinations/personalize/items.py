"""PutItems destination: catalog upserts, ten per call, repeated updates of an item coalesced."""

from __future__ import annotations

from typing import Literal

from connectors.destinations.personalize.records import (
    PersonalizeRecords,
    PersonalizeRecordsConfig,
    dataset_arn_field,
)
from hub.connector import BatchPolicy
from hub.events import EventKind


class PersonalizeItemsConfig(PersonalizeRecordsConfig):
    """Upserts catalog items into an Amazon Personalize Items dataset with PutItems."""

    type: Literal["personalize_items"]
    # PutItems: 1..10 items per call (docs/reference/personalize-api.md#putitems-and-putusers, #field-constraints), 10
    # requests/s per dataset group (docs/reference/personalize-api.md#quotas).
    # Items reach models only after ~20 minutes or a retrain (docs/reference/personalize-api.md#data-freshness), so a 1
    # s window to coalesce repeated updates and fill calls costs nothing that matters.
    api_limits = BatchPolicy(max_events=10, max_wait_secs=1.0, max_requests_per_sec=10, max_in_flight=1)
    default_kinds = frozenset({EventKind.ITEM})
    dataset_arn_env = "PERSONALIZE_ITEMS_DATASET_ARN"
    example = {"type": "personalize_items",
               "dataset_arn": "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"}

    dataset_arn: str = dataset_arn_field("PERSONALIZE_ITEMS_DATASET_ARN", "Items")


class PersonalizeItems(PersonalizeRecords):
    """Upserts catalog items into an Amazon Personalize Items dataset (PutItems), latest update per item wins."""

    Config = PersonalizeItemsConfig
    operation = "PutItems"
    list_key = "items"
    id_key = "itemId"
