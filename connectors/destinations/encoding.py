"""The `encoding:` option of destinations that write what they are given (file, kafka_topic): named encoders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from connectors.destinations.personalize.encoder import PersonalizeEncoder, PersonalizeEncoding
from hub.connector import Context, EncodeResult
from hub.events import Event

Encoding = Literal["personalize", "event"]

ENCODING_DESCRIPTION = (
    "What each event is written as: `personalize`, the Personalize records it becomes (the `mapping:` and "
    "`schemas:` sections applied and checked, as PutEvents / PutItems / PutUsers would take them; what the "
    "mapping skips is not written, what it refuses goes to the dead letter); `event`, the hub's Event JSON. "
    "Default: `personalize` when `mapping.enabled`, else `event`."
)


def encoding_field() -> Any:
    """The `encoding:` field of a destination's config: unset, so that `EventEncoding` picks by `mapping.enabled`."""
    return Field(None, description=ENCODING_DESCRIPTION)


class EventEncoding:
    """Encodes per micro-batch with the encoder `encoding` names; `None` sends the events themselves."""

    def __init__(self, encoding: Encoding | None, context: Context):
        settings = context.resources.get(PersonalizeEncoding)
        if encoding is None:  # what the hub wrote before the option existed
            encoding = "personalize" if settings is not None and settings.mapping.enabled else "event"
        self._encoder = PersonalizeEncoder(settings) if encoding == "personalize" else None

    def encode(self, events: Sequence[Event]) -> list[EncodeResult]:
        if self._encoder is None:
            return [[event] for event in events]
        return self._encoder.encode(events)


def line_of(unit: Any) -> dict[str, Any]:
    """An encoded unit as one JSON object: a Personalize record, or the Event without its raw payload."""
    data = unit.to_dict()
    if isinstance(unit, Event):
        data.pop("raw", None)  # the payload as received is the dead letter's business, not the output's
    return data
