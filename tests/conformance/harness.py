"""The one harness every destination runs through: example configs, sample members, a scripted service."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.connector import Destination
from hub.delivery.retry import RetryPolicy
from hub.delivery.runner import Settlement
from hub.errors import PartialFailure, RejectedError, RetryableError
from hub.events import Event, EventKind, SourceRef
from hub.rows import ExportRow
from personalize_hub.config import interpolate
from tests.fixtures.exports import deliver


class AnyVariable(dict):
    """An environment in which every variable is set (to a value that parses as most field types)."""

    def get(self, key, default=None):
        return "1"


def example_config(cls):
    assert cls.Config.example, f"{cls.Config.__name__} needs an `example` config"
    return cls.Config.model_validate(interpolate(cls.Config.example, AnyVariable()))


def sample_events(n: int, *, broken_every: int = 0) -> list[Event]:
    """Interactions, catalog updates and profiles every encoder can encode; with `broken_every`, every such
    event lacks the id it needs (an encoder that maps them must refuse it)."""
    kinds = [EventKind.INTERACTION, EventKind.ITEM, EventKind.USER]
    events = []
    for i in range(n):
        kind = kinds[i % 3]
        broken = broken_every and i % broken_every == broken_every - 1
        properties = {} if kind is EventKind.USER else {"product_id": "null" if broken else f"i{i % 7}"}
        events.append(Event(kind=kind, source=SourceRef(source_id="conformance", message_id=f"m{i}"),
                            timestamp=1.7e9, name="Product Viewed" if kind is EventKind.INTERACTION else None,
                            call="track", user_id="null" if broken and kind is EventKind.USER else f"u{i % 3}",
                            session_id=f"s{i % 3}", properties=properties,
                            traits={"plan": "gold"} if kind is EventKind.USER else {}, raw={"n": i}))
    return events


def units_of(destination: Destination, events: list[Event]) -> list[Any]:
    """What the destination's encoder makes of the events it accepts (the samples encode without refusal)."""
    units = []
    for result in destination.encode([e for e in events if destination.accepts(e)]):
        assert isinstance(result, list), result
        units += result
    return units


def sample_rows(n: int) -> list[ExportRow]:
    shapes = ["recommendations", "segment"]
    return [ExportRow(shape=shapes[i % 2], source=SourceRef(source_id="conformance", message_id=f"run:{i}"),
                      timestamp=1.7e9, user_id=f"u{i}" if i % 2 == 0 else None,
                      record={"userId": f"u{i}", "items": [{"itemId": "i1"}]} if i % 2 == 0 else
                      {"itemId": f"i{i}", "users": ["u1"]})
            for i in range(n)]


def members_for(destination: Destination, n: int) -> list[Event | ExportRow]:
    """What the destination takes: the sample events it accepts (streaming) and the rows it accepts (export)."""
    members: list[Any] = []
    if destination.streams_events:
        members += units_of(destination, sample_events(n))
    members += [r for r in sample_rows(n) if destination.accepts_row(r)]
    assert members, "the destination takes neither events nor rows"
    return members


Fate = Callable[[str, int], str]
"""A member's message id and its attempt number (1-based) → "ok", "reject" or "retry"."""


@dataclass
class ScriptedService:
    """Stands in for the destination's service behind `send`: each member fares as `fate` says, and the
    batch raises what the contract says for that mix (nothing, RejectedError, RetryableError, PartialFailure)."""

    fate: Fate
    batches: list[list[str]] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)

    async def send(self, batch: Sequence[Any]) -> None:
        ids = [member.message_id for member in batch]
        self.batches.append(ids)
        fates = []
        for message_id in ids:
            self.attempts[message_id] = self.attempts.get(message_id, 0) + 1
            fates.append(self.fate(message_id, self.attempts[message_id]))
        rejected = {i: RejectedError("scripted_reject", f"{ids[i]} refused") for i, f in enumerate(fates) if f == "reject"}
        retry = {i: RetryableError("scripted 503") for i, f in enumerate(fates) if f == "retry"}
        self.delivered += [ids[i] for i, f in enumerate(fates) if f == "ok"]
        if len(rejected) == len(batch) == 1:
            raise next(iter(rejected.values()))
        if len(retry) == len(batch) == 1:
            raise next(iter(retry.values()))
        if rejected or retry:
            raise PartialFailure(rejected=rejected, retry=retry)


async def settle(destination: Destination, members: Sequence[Any], service: ScriptedService,
                 retry: RetryPolicy, timeout_secs: float = 30) -> list[Settlement]:
    """Run members through a DestinationRunner whose destination sends to `service`; one settlement each."""

    async def no_op() -> None:
        return None

    destination.start = no_op  # type: ignore[method-assign] - no service behind the example config
    destination.close = no_op  # type: ignore[method-assign]
    destination.send = service.send  # type: ignore[method-assign]
    return await deliver(destination, members, retry, timeout_secs)
