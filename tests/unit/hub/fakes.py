"""In-process fakes behind the hub's interfaces, for unit tests only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from hub.connector import BatchPolicy, Context, Destination, DestinationConfig
from hub.errors import RejectedError
from hub.events import Event, EventKind, SourceRef


class RecordingConfig(DestinationConfig):
    type: Literal["recording"] = "recording"
    api_limits: ClassVar[BatchPolicy] = BatchPolicy(max_events=10, max_wait_secs=0.0)


class RecordingDestination(Destination):
    """Records every batch it is sent; `script` decides per call what to raise (None = accept)."""

    Config = RecordingConfig

    def __init__(self, script=None, *, key=lambda e: e.user_id or "", reject_ids=(), encoder=None, **config: Any):
        super().__init__(RecordingConfig(**config), Context())
        if encoder is not None:  # e.g. an EventEncoding: what it encodes is what is sent
            self.encode = encoder.encode  # type: ignore[method-assign]
        self.batches: list[list[str]] = []
        self.delivered: list[str] = []
        self.script = script or (lambda batch, call: None)
        self.calls = 0
        self.key = key
        self.reject_ids = set(reject_ids)

    def partition_key(self, event: Event) -> str:
        return self.key(event)

    async def send(self, batch: Sequence[Event]) -> None:
        self.calls += 1
        ids = [e.message_id for e in batch]
        self.batches.append(ids)
        if self.reject_ids & set(ids):
            raise RejectedError("invalid_input", "bad member somewhere in the batch")
        error = self.script(batch, self.calls)
        if error is not None:
            raise error
        self.delivered.extend(ids)


class ListSink:
    """A dead-letter sink holding records in memory; `fail` makes it unavailable."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.fail = False

    async def write_records(self, records: Sequence[dict[str, Any]]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.records.extend(records)


def event(message_id: str, user: str = "u1", kind: EventKind = EventKind.INTERACTION, **kw: Any) -> Event:
    return Event(
        kind=kind,
        source=SourceRef(source_id="test", message_id=message_id),
        timestamp=1_700_000_000.0,
        name="Product Viewed",
        user_id=user,
        raw={"messageId": message_id},
        **kw,
    )
