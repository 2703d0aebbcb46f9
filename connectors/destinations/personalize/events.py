"""PutEvents destination: interactions, ten per call, each call one (sessionId, userId) pair, order kept."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field, model_validator

from connectors.destinations.personalize.base import (
    PersonalizeDestination,
    PersonalizeDestinationConfig,
    from_env,
)
from connectors.destinations.personalize.unit import PersonalizeRecord
from hub.connector import BatchPolicy
from hub.events import EventKind


class PersonalizeEventsConfig(PersonalizeDestinationConfig):
    """Streams interactions to an Amazon Personalize event tracker with PutEvents."""

    type: Literal["personalize_events"]
    # PutEvents: eventList 1..10 of one sessionId/userId
    # (docs/reference/personalize-api.md#putevents, #field-constraints); 1000 requests/s per dataset group
    # (docs/reference/personalize-api.md#quotas), which is per tracker: a dataset group has at most one
    # (docs/reference/personalize-api.md#error-codes-and-statuses). max_in_flight lets one process use that quota at ~50
    # ms round trips (Little's law: 1000/s x 0.05 s = 50 calls).
    # A batch holds one session's events, so it waits up to 0.25 s for the session's next clicks; filters
    # and recommendations see PutEvents data within seconds (docs/reference/personalize-api.md#data-freshness), so this
    # costs no freshness that matters.
    api_limits = BatchPolicy(max_events=10, max_wait_secs=0.25, max_requests_per_sec=1000, max_in_flight=64)
    default_kinds = frozenset({EventKind.INTERACTION})
    example = {"type": "personalize_events", "tracking_id": "${PERSONALIZE_TRACKING_ID}"}

    tracking_id: str = Field(
        default_factory=from_env("PERSONALIZE_TRACKING_ID"),
        max_length=256,
        description="The event tracker's trackingId (CreateEventTracker); default: $PERSONALIZE_TRACKING_ID.",
    )

    @model_validator(mode="after")
    def _tracking_id_set(self) -> PersonalizeEventsConfig:
        if not self.tracking_id:
            raise ValueError("tracking_id is required (or set PERSONALIZE_TRACKING_ID)")
        return self


class PersonalizeEvents(PersonalizeDestination):
    """Streams interactions to an Amazon Personalize event tracker (PutEvents), ten per call, in session order."""

    Config = PersonalizeEventsConfig
    config: PersonalizeEventsConfig
    operation = "PutEvents"

    def partition_key(self, unit: PersonalizeRecord) -> str:
        # One call carries one (sessionId, userId) pair (docs/reference/personalize-api.md#putevents); keying batches by
        # the pair keeps each session's events in order. Length-prefixed so that no two different pairs share a key.
        event = unit.event
        session_id = event.session_id
        if session_id is None:
            return "-"
        return f"{len(session_id)}:{session_id}{event.user_id or ''}"

    def target_description(self) -> str:
        return f"tracking_id {self.config.tracking_id!r} (an ACTIVE event tracker) and aws.personalize_endpoint_url"

    async def send(self, batch: Sequence[PersonalizeRecord]) -> None:
        first = batch[0].event
        session_id, user_id = first.session_id, first.user_id or None
        event_list = []
        for unit in batch:
            event = unit.event
            if event.session_id != session_id or (event.user_id or None) != user_id:
                raise ValueError("a PutEvents batch mixes sessions: batches must follow partition_key")
            event_list.append(unit.record)  # finished by the encoder: checked, no null members
        # Member order as in the service model and botocore's examples: trackingId, userId, sessionId.
        params: dict[str, object] = {"trackingId": self.config.tracking_id}
        if user_id:
            params["userId"] = user_id
        params["sessionId"] = session_id
        params["eventList"] = event_list
        await self.call(params)
