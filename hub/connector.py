"""The contracts between the engine and connectors: sources, destinations, batch policy, outcomes."""

from __future__ import annotations

import abc
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.delivery.retry import RetryPolicy
from hub.events import Event, EventKind, Rejection, SourceRef
from hub.rows import ExportRow

R = TypeVar("R")


class Outcome(str, enum.Enum):
    """How an event settled. Ordered by severity: a source acknowledges only DELIVERED and REJECTED."""

    DELIVERED = "delivered"  # every destination it routes to has it (or it was deliberately skipped)
    REJECTED = "rejected"  # can never be delivered as it is; the dead letter has it with a reason
    RETRY = "retry"  # not settled: do not acknowledge, redeliver later

    @staticmethod
    def worst(outcomes: Sequence[Outcome]) -> Outcome:
        if Outcome.RETRY in outcomes:
            return Outcome.RETRY
        if Outcome.REJECTED in outcomes:
            return Outcome.REJECTED
        return Outcome.DELIVERED


@dataclass(slots=True)
class EmitReport:
    """The settlement of one `emit` call: one outcome per event passed in, plus decode rejections."""

    outcomes: list[Outcome]
    rejections: list[Rejection] = field(default_factory=list)  # every reason, incl. decode-time ones
    dead_letter_failed: bool = False  # rejections could not be recorded: acknowledge nothing

    @property
    def outcome(self) -> Outcome:
        if self.dead_letter_failed:
            return Outcome.RETRY
        return Outcome.worst(self.outcomes)

    @property
    def delivered(self) -> int:
        return self.outcomes.count(Outcome.DELIVERED)

    @property
    def rejected(self) -> int:
        return self.outcomes.count(Outcome.REJECTED)

    @property
    def retry(self) -> int:
        return self.outcomes.count(Outcome.RETRY)


Emit = Callable[[Sequence[Event], Sequence[Rejection]], Awaitable[EmitReport]]
"""`await emit(events, rejections)` is the acknowledgement: it returns once every event has settled.

`rejections` are inputs the source could not even decode; they are dead-lettered before emit returns.
"""


class Submission(Protocol):
    """A micro-batch queued at every destination but not settled yet (what `PipelinedEmit.submit` returns)."""

    @property
    def retry_seen(self) -> bool:
        """Some input already ended RETRY: an order-keeping source submits nothing more until it settled."""

    async def settled(self) -> EmitReport:
        """Wait until every input settled, as `emit` does; the acknowledgement."""


class Chain:
    """A source's ordered stream of micro-batches, e.g. one Kafka partition's (`PipelinedEmit.submit`'s `chain`).

    `ended` once the source stopped it (revoked, shutting down): nothing more is submitted on it, so a unit of it
    given up afterwards holds nothing back (hub.delivery.runner.Ticket), and nothing of it is kept for good.
    """

    __slots__ = ("ended",)

    def __init__(self) -> None:
        self.ended = False


@runtime_checkable
class PipelinedEmit(Protocol):
    """An Emit that can also be taken in two halves: `submit` returns once the micro-batch is queued, in
    order, at every destination; a source may submit its next micro-batch before awaiting the settlement of
    the last one (the hub's Pipeline is one; a plain Emit callable makes the source wait for each)."""

    async def __call__(self, events: Sequence[Event], rejections: Sequence[Rejection] = ()) -> EmitReport: ...

    async def submit(self, events: Sequence[Event], rejections: Sequence[Rejection] = (), *,
                     chain: object = None) -> Submission:
        """Queue a micro-batch; with a `chain`, none of its units overtakes a unit of its chain that ended RETRY
        (they end RETRY too, held back) until `resume(chain)`."""

    def resume(self, chain: object) -> None:
        """`chain` redelivered what was held back (in order): its units go out again."""


StageResult = list[Event | Rejection] | Rejection
"""Per input event: the events it becomes (none = deliberately skipped), or why it cannot go on.

A list may mix children and Rejections (one order line without an item id does not sink the others).
"""


class Stage(Protocol):
    """A step between decoding and delivery, applied to a micro-batch so it can batch its own I/O."""

    async def apply(self, events: list[Event]) -> list[StageResult]:
        """Return exactly one result per input event, in order."""
        ...


EncodeResult = list[Any] | Rejection
"""Per routed event: the units a destination sends for it (none = nothing to send, settled as delivered),
or why it cannot be sent. A list may mix units and Rejections (one bad order line does not sink the others).
A unit is whatever the destination's `send`, `partition_key` and `size_of` take; it has the `source` it
settles as and a `timestamp`.
"""


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """How a destination batches: the API's limits (in the destination module, with their source)."""

    max_events: int
    max_bytes: int | None = None
    max_wait_secs: float = 0.05
    max_requests_per_sec: float | None = None
    max_in_flight: int = 8

    def lowered_by(self, overrides: BatchOverrides) -> BatchPolicy:
        """Apply config overrides, which may only lower the limits (validated in `DestinationConfig`)."""
        changes = {k: v for k, v in overrides.model_dump().items() if v is not None}
        return replace(self, **changes)


class BatchOverrides(BaseModel):
    """Per-destination tuning; each value may only be lower than the API limit the destination declares."""

    model_config = ConfigDict(extra="forbid")

    max_events: int | None = Field(None, ge=1, description="Events per request.")
    max_bytes: int | None = Field(None, ge=1, description="Bytes per request.")
    max_wait_secs: float | None = Field(None, ge=0, description="Longest an event waits for its batch to fill.")
    max_requests_per_sec: float | None = Field(None, gt=0, description="Client-side request rate ceiling.")
    max_in_flight: int | None = Field(None, ge=1, description="Concurrent requests.")


class ConnectorConfig(BaseModel):
    """Base of every connector's config; subclasses declare `type: Literal["<module name>"]`.

    `example` is a minimal working config for the docs and the conformance suite (`${VAR}` allowed).
    """

    model_config = ConfigDict(extra="forbid")
    example: ClassVar[dict[str, Any]] = {}

    id: str = Field("", description="Name used in metrics, logs and the dead letter; defaults to the type.")

    @model_validator(mode="after")
    def _default_id(self) -> ConnectorConfig:
        if not self.id:
            self.id = getattr(self, "type", type(self).__name__)
        return self


class SourceConfig(ConnectorConfig):
    """Base of source configs."""


class BatchedConfig(ConnectorConfig):
    """Base of destination configs: how sends are batched, never above the API's own limits."""

    api_limits: ClassVar[BatchPolicy] = BatchPolicy(max_events=100)

    batch: BatchOverrides = Field(default_factory=BatchOverrides, description="Batching overrides.")

    @model_validator(mode="after")
    def _overrides_only_lower(self) -> BatchedConfig:
        limits = self.api_limits
        for name in ("max_events", "max_bytes", "max_requests_per_sec", "max_in_flight"):
            value, limit = getattr(self.batch, name), getattr(limits, name)
            if value is not None and limit is not None and value > limit:
                raise ValueError(f"batch.{name}={value} exceeds the API limit {limit}")
        return self

    def batch_policy(self) -> BatchPolicy:
        return self.api_limits.lowered_by(self.batch)


class DestinationConfig(BatchedConfig):
    """Base of streaming destination configs: which event kinds are routed here, and batching."""

    default_kinds: ClassVar[frozenset[EventKind]] = frozenset(EventKind)

    kinds: list[EventKind] | None = Field(
        None, description="Event kinds routed to this destination; default: what the destination accepts."
    )

    def routed_kinds(self) -> frozenset[EventKind]:
        return frozenset(self.kinds) if self.kinds is not None else self.default_kinds


class ExportDestinationConfig(BatchedConfig):
    """Base of export destination configs: they take batch jobs' rows, so there are no `kinds` to route."""


@dataclass
class Context:
    """What the engine lends every connector: a logger, and the shared resources the application set up
    (clients, encoder settings), looked up by their type so the engine names none of them."""

    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("hub"))
    resources: dict[type, Any] = field(default_factory=dict)
    # The one retry budget (config `retry:`): the runners' sends, and a pulling source's redeliveries of
    # what ended RETRY, after which it dead-letters the record (the runtime sets it from the config).
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def resource(self, kind: type[R]) -> R:
        """The shared `kind` the application provided; LookupError naming it when there is none."""
        try:
            return self.resources[kind]
        except KeyError:
            raise LookupError(f"no shared {kind.__name__} in this Context: the application provides it") from None


class Source(abc.ABC):
    """Produces events and acknowledges them only after `emit` settled them."""

    Config: ClassVar[type[SourceConfig]]

    def __init__(self, config: SourceConfig, context: Context):
        self.config = config
        self.context = context

    async def run(self, emit: Emit) -> None:  # noqa: B027 - webhook sources have no loop of their own
        """Pull and emit until cancelled. Push-based sources (webhooks) leave this empty."""

    def decode(self, payload: Any, source: SourceRef) -> list[Event]:
        """Decode one payload as this source received it (used by `hub replay` on dead-letter records).

        Returns the events it becomes (none = nothing Personalize uses); raises RejectedError.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot replay payloads")

    async def close(self) -> None:  # noqa: B027
        """Release connections."""


class WebhookSource(Source):
    """A source whose events arrive over HTTP on the hub's shared app."""

    @abc.abstractmethod
    def routes(self, emit: Emit) -> list[Any]:
        """Starlette routes serving this source; handlers answer only after `emit` returned."""


class Destination(abc.ABC):
    """Sends batches to one service (a streaming destination, listed under `destinations:`), shaped like a
    Vector sink: `encode` turns routed events into the units the service takes, `send` delivers a batch of
    units (the service), and the config's `BatchPolicy` says how units are batched.

    `send` returns normally when the whole batch was delivered, raises RetryableError when it may succeed
    later, RejectedError when it never will, and PartialFailure naming the members that failed.
    """

    Config: ClassVar[type[DestinationConfig]]
    # True when sending an event twice has the effect of sending it once (an idempotency key such as
    # webhook-id, or an overwrite such as Braze attributes). The batch side's delivery ledger resends a
    # recipient whose outcome is unknown (crash mid-send) only to such destinations
    # (docs/reference/idempotency.md#per-destination).
    idempotent: bool = False
    # Streaming destinations take events from sources; the config refuses one that does not under `destinations:`.
    streams_events: ClassVar[bool] = True
    # The ExportRow shapes it takes from batch jobs (connectors/formats/recommendations.py); empty: none,
    # and the config refuses it under `jobs:`.
    export_rows: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: BatchedConfig, context: Context):
        self.config = config
        self.context = context

    def accepts(self, event: Event) -> bool:
        return event.kind in self.config.routed_kinds()

    def accepts_row(self, row: ExportRow) -> bool:
        return row.shape in self.export_rows

    def encode(self, events: Sequence[Event]) -> list[EncodeResult]:
        """One result per routed event, in order (one call per micro-batch): the units `send` takes.

        The default sends the events themselves; an encoder that finds an event it can never send returns
        a Rejection with a reason code, and the pipeline dead-letters it before anything is sent.
        """
        return [[event] for event in events]

    def partition_key(self, unit: Any) -> str:
        """Units with the same key are sent in order, never in two batches at once."""
        return ""

    def size_of(self, unit: Any) -> int:
        """Bytes the unit adds to a request, for `BatchPolicy.max_bytes`."""
        return 0

    async def start(self) -> None:  # noqa: B027
        """Open clients; called once before the first send."""

    @abc.abstractmethod
    async def send(self, batch: Sequence[Any]) -> None: ...

    async def delivery_status(self, batch: Sequence[Event]) -> Sequence[bool | None]:
        """Whether an earlier send of each event arrived: True, False, or None when this service cannot tell.

        The batch side asks after a crash mid-send (the events carry that send's message ids) instead of
        sending again blindly; a destination that can look a send up overrides this
        (docs/reference/idempotency.md#per-destination).
        """
        return [None] * len(batch)

    async def close(self) -> None:  # noqa: B027
        """Flush and release clients."""


class ExportDestination(Destination):
    """Sends batches of ExportRows (a batch job's recommendations or audiences) to one service.

    Listed under a job's `destinations:`; `export_rows` names the row shapes it takes. The settlement
    contract is `Destination.send`'s, over rows.
    """

    Config: ClassVar[type[ExportDestinationConfig]]  # type: ignore[assignment]
    streams_events: ClassVar[bool] = False
    # True: reads a per-user row only through `user_recommendations(row)`, never `row.record` itself; when
    # every destination of a job does, the workers leave the items out of the record (workers/outputs.py).
    reads_views: ClassVar[bool] = False

    def accepts(self, event: Event) -> bool:
        return False  # never routed events: it is not a streaming destination

    def partition_key(self, row: ExportRow) -> str:  # type: ignore[override]
        """Rows with the same key are sent in order, never in two batches at once."""
        return ""

    def size_of(self, row: ExportRow) -> int:  # type: ignore[override]
        """Bytes the row adds to a request, for `BatchPolicy.max_bytes`."""
        return 0

    @abc.abstractmethod
    async def send(self, batch: Sequence[ExportRow]) -> None: ...  # type: ignore[override]


@runtime_checkable
class RecordSink(Protocol):
    """A destination that can also hold the dead letter: it stores plain JSON records as they are."""

    async def write_records(self, records: Sequence[dict[str, Any]]) -> None: ...
