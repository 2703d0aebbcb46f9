"""The hub's own Event as JSON: what a `kafka_topic` destination with `encoding: event` writes."""

from __future__ import annotations

from typing import Any

import msgspec

from hub.errors import RejectedError
from hub.events import Event, SourceRef, to_epoch_secs

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes | Any, source: SourceRef) -> Event:
    """Bytes (or an already-parsed object, e.g. a decoded Avro record) → Event.

    The event keeps its message id (the idempotency key) but takes `source`'s origin fields: the
    consuming source, partition and offset are what acknowledgement and the dead letter need.
    """
    try:
        if isinstance(data, (bytes, bytearray, memoryview)):
            event = _decoder.decode(data)
        else:
            event = msgspec.convert(data, Event, strict=False)
    except msgspec.DecodeError as err:  # ValidationError is a DecodeError: names the field
        raise RejectedError("invalid_event", f"not a hub Event: {err}") from None
    try:  # another hub wrote it, but the window is this hub's: the one normaliser decides
        event.timestamp = to_epoch_secs(event.timestamp)
    except ValueError as err:
        raise RejectedError("invalid_timestamp", f"timestamp: {err}") from None
    event.source = msgspec.structs.replace(source, message_id=event.source.message_id)
    return event
