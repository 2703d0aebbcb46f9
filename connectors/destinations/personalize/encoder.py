"""The Personalize encoder: a micro-batch of events → finished PutEvents / PutItems / PutUsers records.

The encoder of the Personalize destination package (Vector's sink shape: this encoder, the service in
api.py / wire.py, the batch policies in events.py / items.py / users.py). It maps each event by its
planned (call, name) (mapping/), then applies the record rules (validation.py) to the fresh record in
place: one record dict per output, no copies between steps. `file` and `kafka_topic` use it too with
`encoding: personalize`, to write what Personalize would be sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from connectors.destinations.personalize.mapping import Mapper, MappingConfig
from connectors.destinations.personalize.schema import DatasetSchema
from connectors.destinations.personalize.unit import PersonalizeRecord
from connectors.destinations.personalize.validation import RecordRules
from hub.connector import EncodeResult
from hub.events import Event, EventKind, Rejection


@dataclass(frozen=True)
class PersonalizeEncoding:
    """The `mapping:` and `schemas:` sections, lent by the application to every destination that encodes
    for Personalize (a `hub.connector.Context` resource); without one, the default mapping and no schemas."""

    mapping: MappingConfig = field(default_factory=MappingConfig)
    schemas: Mapping[str, DatasetSchema | None] = field(default_factory=dict)


class PersonalizeEncoder:
    """One per destination: its own mapping state (the session's last product list, for impressions)."""

    def __init__(self, settings: PersonalizeEncoding | None = None):
        settings = settings or PersonalizeEncoding()
        self.enabled = settings.mapping.enabled
        self.mapper = Mapper(settings.mapping, settings.schemas)
        self.rules = RecordRules(settings.schemas)

    def kind_of(self, event: Event) -> EventKind | None:
        """The kind of record the event becomes (routes it to PutEvents, PutItems or PutUsers); None: none."""
        return self.mapper.kind_of(event)

    def encode(self, events: Sequence[Event]) -> list[EncodeResult]:
        """One result per event: its finished records, or why it cannot be sent (reason code, field named)."""
        if not self.enabled:
            return [Rejection(source=event.source, reason="not_mapped", raw=event.raw,
                              message="mapping.enabled is false: there is no Personalize record to send")
                    for event in events]
        map_event, rejection_of = self.mapper.map, self.rules.rejection
        results: list[EncodeResult] = []
        for event in events:
            mapped = map_event(event)
            if type(mapped) is list:
                for index, unit in enumerate(mapped):
                    if type(unit) is PersonalizeRecord and (rejection := rejection_of(unit)) is not None:
                        mapped[index] = rejection
            results.append(mapped)
        return results
