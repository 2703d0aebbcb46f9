"""PutUsers destination: profile upserts, ten per call, repeated updates of a user coalesced."""

from __future__ import annotations

from typing import Literal

from connectors.destinations.personalize.records import (
    PersonalizeRecords,
    PersonalizeRecordsConfig,
    dataset_arn_field,
)
from hub.connector import BatchPolicy
from hub.events import EventKind


class PersonalizeUsersConfig(PersonalizeRecordsConfig):
    """Upserts user profiles into an Amazon Personalize Users dataset with PutUsers."""

    type: Literal["personalize_users"]
    # PutUsers: 1..10 users per call (docs/reference/personalize-api.md#putitems-and-putusers, #field-constraints), 10
    # requests/s per dataset group (docs/reference/personalize-api.md#quotas).
    # User data reaches models after ~20 minutes or a retrain (docs/reference/personalize-api.md#data-freshness): a 1 s
    # coalescing window is free.
    api_limits = BatchPolicy(max_events=10, max_wait_secs=1.0, max_requests_per_sec=10, max_in_flight=1)
    default_kinds = frozenset({EventKind.USER})
    dataset_arn_env = "PERSONALIZE_USERS_DATASET_ARN"
    example = {"type": "personalize_users",
               "dataset_arn": "arn:aws:personalize:us-east-1:123456789012:dataset/shop/USERS"}

    dataset_arn: str = dataset_arn_field("PERSONALIZE_USERS_DATASET_ARN", "Users")


class PersonalizeUsers(PersonalizeRecords):
    """Upserts user profiles into an Amazon Personalize Users dataset (PutUsers), latest update per user wins."""

    Config = PersonalizeUsersConfig
    operation = "PutUsers"
    list_key = "users"
    id_key = "userId"
