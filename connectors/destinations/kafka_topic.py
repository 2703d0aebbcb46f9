"""Produces events (their raw payload, Personalize record or hub Event: `encoding:`) to a Kafka topic; also a dead letter."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError
from pydantic import Field, model_validator

from connectors.destinations.encoding import EventEncoding
from connectors.destinations.personalize.unit import PersonalizeRecord
from connectors.formats import native
from connectors.kafka_connection import KafkaConnection
from hub.connector import BatchPolicy, Context, Destination, DestinationConfig, EncodeResult
from hub.errors import PartialFailure, RejectedError, RetryableError
from hub.events import Event, EventKind

# Records larger than the producer's max_request_size (aiokafka default 1 MiB, like Kafka's
# max.request.size) are refused before sending; the broker's message.max.bytes may be lower.
MAX_RECORD_BYTES = 1024 * 1024

_TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)


class KafkaTopicConfig(DestinationConfig, KafkaConnection):
    """Writes to a Kafka topic: webhooks → Kafka → hub in production, or the dead letter."""

    type: Literal["kafka_topic"]
    example = {"type": "kafka_topic", "id": "clickstream", "bootstrap_servers": "${KAFKA_BOOTSTRAP}",
               "topic": "clickstream", "encoding": "raw"}
    # Kafka has no per-request record count; the producer batches by partition itself. 1000 events per
    # send bounds the futures held at once; one send in flight keeps the topic in event order.
    api_limits = BatchPolicy(max_events=1000, max_wait_secs=0.005, max_in_flight=1)

    topic: str = Field(..., min_length=1, description="Topic to write to.")
    encoding: Literal["raw", "personalize", "event"] | None = Field(
        None,
        description="What each Kafka record holds: `raw` (default), the payload as the source received it (a `kafka` "
                    "source with the same format decodes it again); `personalize`, the Personalize record the event "
                    "becomes (mapped and checked, as PutEvents / PutItems / PutUsers would take it); `event`, the "
                    "hub's Event JSON (format `native`).",
    )
    payload: Literal["raw", "record", "event"] | None = Field(
        None, description="The former name of `encoding` (`record` is `personalize`); still read."
    )
    enable_idempotence: bool = Field(
        True, description="Idempotent producer (no duplicates from producer retries); off for brokers without it (tansu)."
    )
    compression: Literal["none", "gzip"] = Field("none", description="Record batch compression.")
    request_timeout_secs: float = Field(30.0, gt=0, description="How long a produce request may take.")

    @model_validator(mode="after")
    def _one_encoding(self) -> KafkaTopicConfig:
        if self.payload is not None:
            if self.encoding is not None:
                raise ValueError("set `encoding` only (`payload` is its former name)")
            self.encoding = "personalize" if self.payload == "record" else self.payload
        return self


class KafkaTopic(Destination):
    """Kafka topic destination (acks=all), keyed by user so one person's events stay on one partition."""

    Config = KafkaTopicConfig
    config: KafkaTopicConfig

    def __init__(self, config: KafkaTopicConfig, context: Context):
        super().__init__(config, context)
        self._producer: AIOKafkaProducer | None = None
        self._start_lock = asyncio.Lock()
        self._encoder = msgspec.json.Encoder()
        self._mode = config.encoding or "raw"
        # `raw` and `event` write the event itself; `personalize` its records (EventEncoding).
        self.encoding = EventEncoding("personalize" if self._mode == "personalize" else "event", context)

    async def start(self) -> None:
        try:
            await self._connect()
        except RetryableError as err:  # the hub still starts; sends retry the connection until Kafka is up
            self.context.logger.warning("destination %s: %s", self.config.id, err)

    async def _connect(self) -> None:
        async with self._start_lock:
            if self._producer is not None:
                return
            producer = AIOKafkaProducer(
                **self.config.client_options(),
                acks="all",  # acknowledged only once every in-sync replica has it: what "delivered" means here
                enable_idempotence=self.config.enable_idempotence,
                compression_type=None if self.config.compression == "none" else self.config.compression,
                max_request_size=MAX_RECORD_BYTES,
                request_timeout_ms=int(self.config.request_timeout_secs * 1000),
                linger_ms=5,
            )
            try:
                await producer.start()
            except KafkaError as err:
                await producer.stop()
                raise RetryableError(f"kafka {self.config.bootstrap_servers}: {err!r}") from err
            self._producer = producer

    def encode(self, events: Sequence[Event]) -> list[EncodeResult]:
        return self.encoding.encode(events)

    def key_of(self, unit: Event | PersonalizeRecord) -> bytes | None:
        """The person (user id, else anonymous id), or the item for catalog records; None spreads them."""
        if isinstance(unit, PersonalizeRecord):
            event = unit.event
            key = event.user_id or event.anonymous_id
            if key is None and unit.kind is EventKind.ITEM:
                key = unit.record["itemId"]
        else:
            key = unit.user_id or unit.anonymous_id
        return str(key).encode() if key is not None else None

    def value_of(self, unit: Event | PersonalizeRecord) -> bytes:
        if isinstance(unit, PersonalizeRecord):
            return self._encoder.encode(unit.record)
        if self._mode == "event":
            return native.encode(unit)
        body = unit.raw
        if body is None:
            raise RejectedError("missing_raw", "event has no raw payload to write (encoding: raw)")
        if isinstance(body, (bytes, bytearray)):
            return bytes(body)
        if isinstance(body, str):
            return body.encode()
        return self._encoder.encode(body)

    async def send(self, batch: Sequence[Event | PersonalizeRecord]) -> None:
        rejected: dict[int, RejectedError] = {}
        rows: list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]] = []
        for index, event in enumerate(batch):
            try:
                value = self.value_of(event)
            except RejectedError as err:
                rejected[index] = err
                continue
            except (TypeError, msgspec.EncodeError) as err:
                rejected[index] = RejectedError("unencodable", f"cannot encode as JSON: {err}")
                continue
            rows.append((index, self.key_of(event), value, [("hub-message-id", event.message_id.encode())]))
        failures = await self._produce(rows)
        retry = {i: err for i, err in failures.items() if isinstance(err, RetryableError)}
        rejected.update({i: err for i, err in failures.items() if isinstance(err, RejectedError)})
        if len(batch) == 1 and rejected:
            raise rejected[0]
        if len(batch) == 1 and retry:
            raise retry[0]
        if rejected or retry:
            raise PartialFailure(rejected=rejected, retry=retry)

    async def write_records(self, records: Sequence[dict[str, Any]]) -> None:
        """The dead letter: each record as JSON, keyed by its source message id; raises unless all landed."""
        rows = []
        for index, record in enumerate(records):
            source = record.get("source") if isinstance(record.get("source"), dict) else {}
            message_id = source.get("message_id")
            rows.append((index, str(message_id).encode() if message_id else None, self._encoder.encode(record), []))
        failures = await self._produce(rows)
        if failures:
            first = next(iter(failures.values()))
            raise RetryableError(f"{len(failures)} dead-letter records not written to {self.config.topic}: {first}")

    async def _produce(
        self, rows: Sequence[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]]
    ) -> dict[int, RetryableError | RejectedError]:
        """Send every row, then await every acknowledgement; failures by row index, classified."""
        await self._connect()
        assert self._producer is not None
        failures: dict[int, RetryableError | RejectedError] = {}
        pending: list[tuple[int, asyncio.Future[Any]]] = []
        for index, key, value, headers in rows:
            try:
                pending.append((index, await self._producer.send(self.config.topic, value, key=key, headers=headers)))
            except _TOO_LARGE as err:
                failures[index] = RejectedError("too_large", f"{len(value)} bytes: {err}")
            except KafkaError as err:
                failures[index] = RetryableError(f"kafka produce failed: {err!r}")
        results = await asyncio.gather(*(future for _, future in pending), return_exceptions=True)
        for (index, _), result in zip(pending, results, strict=True):
            if isinstance(result, _TOO_LARGE):
                failures[index] = RejectedError("too_large", f"the broker refused the record as too large: {result}")
            elif isinstance(result, BaseException):
                # Everything else (timeouts, leader changes, authorisation) is about the cluster, not this
                # record: retry rather than dead-letter a whole topic's worth of good events.
                failures[index] = RetryableError(f"kafka produce failed: {result!r}")
        return failures

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
