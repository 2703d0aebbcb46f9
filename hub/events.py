"""The one internal Event every source decodes into and every stage and destination works on."""

from __future__ import annotations

import enum
import hashlib
import math
import time
from datetime import datetime, timezone
from typing import Any

import msgspec


class EventKind(str, enum.Enum):
    """What an event means for Personalize, independent of the dialect it arrived in."""

    INTERACTION = "interaction"  # a user did something with an item (PutEvents)
    ITEM = "item"  # catalog upsert or removal (PutItems)
    USER = "user"  # profile attributes (PutUsers)
    IDENTIFY = "identify"  # anonymousId becomes known as userId (identity store; may also carry traits)
    ALIAS = "alias"  # previousId and userId are the same person (identity store)


class SourceRef(msgspec.Struct, frozen=True, kw_only=True):
    """Where an event came from, so it can be acknowledged, dead-lettered and replayed."""

    source_id: str
    message_id: str
    partition: int | None = None
    offset: int | None = None
    request_id: str | None = None
    # The route's call when the payload does not carry it (Segment's /v1/track takes messages without
    # `type`): kept so `hub replay` decodes the dead-lettered payload as it was received.
    call: str | None = None

    def child(self, index: int) -> SourceRef:
        """The reference of the `index`th part of this message (e.g. one product of an order): a stable id."""
        return msgspec.structs.replace(self, message_id=f"{self.message_id}:{index}")


class Event(msgspec.Struct, kw_only=True):
    """A decoded, dialect-free event. It carries no destination's payload: each destination encodes
    the events routed to it (`Destination.encode`).

    Identity fields are the ones the source sent; the identity stage overwrites `user_id` and
    `session_id` with the stitched values. `raw` keeps the original payload for the dead letter.
    """

    kind: EventKind
    source: SourceRef
    timestamp: float  # epoch seconds, UTC; normalised by `to_epoch_secs` in one place
    name: str | None = None  # the event's name in its dialect, e.g. "Product Viewed"
    call: str | None = None  # the dialect's call type, e.g. "track", "page", "commerce_event"
    user_id: str | None = None
    anonymous_id: str | None = None
    session_id: str | None = None
    previous_id: str | None = None  # alias: the id being merged into user_id
    properties: dict[str, Any] = msgspec.field(default_factory=dict)
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    raw: Any = None

    @property
    def message_id(self) -> str:
        return self.source.message_id

    def derive(self, index: int, **changes: Any) -> Event:
        """A child event (e.g. one interaction per product of an order) with a stable derived message id."""
        return msgspec.structs.replace(self, source=self.source.child(index), **changes)

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


def event_id_for(message_id: str) -> str:
    """Deterministic Personalize eventId from the source message id, so redelivery is idempotent.

    Personalize ignores repeated eventIds for training (docs/reference/personalize-api.md#putevents); eventId is 1..256
    characters, so long message ids are hashed rather than truncated (truncation could collide).
    """
    if 0 < len(message_id) <= 256:
        return message_id
    return hashlib.sha256(message_id.encode()).hexdigest()


MILLIS_THRESHOLD = 1e11  # epoch seconds reach 1e11 only in the year 5138; larger numbers are milliseconds


class TimestampWindow(msgspec.Struct, frozen=True):
    """The event times the hub believes: a time outside is a broken clock or unit, not an event.

    1e30 (read as milliseconds: year ~3e19) and year 9999 were stored as they came; Personalize trains
    on event recency, so one such event skews a model silently. `timestamps:` in the config sets it.
    """

    earliest_secs: float = 946_684_800.0  # 2000-01-01T00:00:00Z
    max_ahead_secs: float = 86_400.0  # clients' clocks run ahead; a day is generous

    def check(self, secs: float, value: Any) -> float:
        latest = time.time() + self.max_ahead_secs
        if secs < self.earliest_secs or secs > latest:
            raise ValueError(f"{value!r:.60} is outside the accepted window "
                             f"{_iso(self.earliest_secs)} … now + {self.max_ahead_secs:.0f}s (config `timestamps`)")
        return secs


_window = TimestampWindow()


def set_timestamp_window(window: TimestampWindow) -> None:
    """Install the process's window (the runtime does, from the config) for every decoder to apply."""
    global _window
    _window = window


def _iso(secs: float) -> str:
    return datetime.fromtimestamp(secs, timezone.utc).isoformat().replace("+00:00", "Z")


def to_epoch_secs(value: Any) -> float:
    """Normalise a timestamp (ISO-8601 string, epoch seconds or milliseconds, datetime) to epoch seconds.

    The one place timestamps are interpreted: users report events silently ignored by Personalize
    because sentAt was sent in the wrong unit (docs/reference/personalize-api.md#sentat-units). Raises ValueError on
    anything else, and on a time outside the installed `TimestampWindow`.
    """
    return _window.check(_parse_epoch_secs(value), value)


def _parse_epoch_secs(value: Any) -> float:
    kind = type(value)
    if kind is float or kind is int:  # the common cases first (decoders hand over JSON numbers as they are)
        secs = float(value)
    elif kind is str:
        text = value.strip()
        if "-" in text[1:] or "T" in text:  # ISO-8601, the common case: skip the failing float() attempt
            try:
                dt = datetime.fromisoformat(text)
                return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
            except ValueError:
                raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from None
        try:
            secs = float(text)
        except ValueError:
            raise ValueError(f"not a timestamp: {value!r}") from None
    elif isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    elif isinstance(value, (int, float)):
        secs = float(value)
    elif isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    elif isinstance(value, str):
        return _parse_epoch_secs(str(value))  # a str subclass: as the text it holds
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if not math.isfinite(secs) or secs < 0:
        raise ValueError(f"not a timestamp: {value!r}")
    return secs / 1000.0 if secs >= MILLIS_THRESHOLD else secs


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    """An input that cannot be delivered as it is, with a machine-readable reason code.

    `reason` is a short snake_case code (metrics label, dead-letter filter for replay); `message` says
    what a person should fix, naming the field.
    """

    source: SourceRef
    reason: str
    message: str
    raw: Any = None
