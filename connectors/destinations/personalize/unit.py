"""`PersonalizeRecord`, what the Personalize encoder makes of an event: one PutEvents/PutItems/PutUsers member."""

from __future__ import annotations

from typing import Any

from hub.events import Event, EventKind, SourceRef


class PersonalizeRecord:
    """One request member, finished for the wire, with the event it came from.

    `source` is what it settles as: the event's own, or a derived one for a product of an order. `record`
    is the member as the API takes it (`properties` a JSON string once the rules have finished it);
    userId and sessionId of an interaction travel beside it in the call, so they are read from `event`.
    """

    __slots__ = ("event", "source", "kind", "record")

    def __init__(self, event: Event, source: SourceRef, kind: EventKind, record: dict[str, Any]):
        self.event = event
        self.source = source
        self.kind = kind
        self.record = record

    @property
    def message_id(self) -> str:
        return self.source.message_id

    @property
    def timestamp(self) -> float:
        return self.event.timestamp

    @property
    def user_id(self) -> str | None:
        return self.event.user_id

    @property
    def session_id(self) -> str | None:
        return self.event.session_id

    def to_dict(self) -> dict[str, Any]:
        """The record as one JSON line (file, Kafka, the console): an interaction with its userId and sessionId."""
        if self.kind is EventKind.INTERACTION:
            return {"userId": self.event.user_id, "sessionId": self.event.session_id, **self.record}
        return self.record

    def __repr__(self) -> str:
        return f"PersonalizeRecord({self.kind.value}, {self.source.message_id!r}, {self.record!r})"
