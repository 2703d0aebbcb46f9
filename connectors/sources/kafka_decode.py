"""Turns Kafka records into Events in the configured format; a record that cannot be decoded is a Rejection."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple, Protocol

import msgspec
from fastavro.types import Schema

from connectors.formats import avro, mparticle, native, segment
from connectors.formats.json_document import InvalidJson, decode_json
from connectors.sources.schema_registry import SchemaRegistry
from hub.errors import RejectedError
from hub.events import Event, Rejection, SourceRef

log = logging.getLogger(__name__)

Dialect = Literal["segment", "mparticle", "native"]


class KafkaRecord(Protocol):
    """The parts of aiokafka's ConsumerRecord the decoder reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    value: bytes | None


class RecordDecoder:
    """Decodes one record into its events and rejections; never raises for a bad record.

    Records are dialect JSON (one Segment message or `{"batch": [...]}`; one mParticle batch or a
    list of them; a hub Event), or Avro whose decoded record is in `avro_dialect`.
    """

    def __init__(
        self,
        source_id: str,
        format: Literal["segment", "mparticle", "native", "avro"],
        *,
        avro_dialect: Dialect = "segment",
        registry: SchemaRegistry | None = None,
        local_schema: Schema | None = None,
        confluent_framing: bool = True,
        mparticle_user_id_identity: str = "customer_id",
    ):
        if format == "avro" and registry is None and local_schema is None:
            raise ValueError("avro needs a schema registry or a local schema")
        self.source_id = source_id
        self.format = format
        self.avro_dialect = avro_dialect
        self.registry = registry
        self.local_schema = local_schema
        self.confluent_framing = confluent_framing
        self.mparticle_user_id_identity = mparticle_user_id_identity
        self._unknown_schemas: dict[int, RejectedError] = {}

    async def prepare(self, records: Sequence[KafkaRecord]) -> None:
        """Fetch the writer schemas these records name; RetryableError while the registry is down."""
        if self.format != "avro" or self.registry is None:
            return
        ids = set()
        for record in records:
            value = record.value
            if value is not None and len(value) >= avro.HEADER_BYTES and value[0] == avro.MAGIC_BYTE:
                ids.add(int.from_bytes(value[1:avro.HEADER_BYTES], "big"))
        self._unknown_schemas = await self.registry.prefetch(ids)

    def origin(self, record: KafkaRecord) -> SourceRef:
        """Where a record came from: its message id is `topic/partition/offset` (what `replay` reads back)."""
        return SourceRef(
            source_id=self.source_id, message_id=f"{record.topic}/{record.partition}/{record.offset}",
            partition=record.partition, offset=record.offset,
        )

    def replay(self, payload: Any, origin: SourceRef) -> list[Event]:
        """The events of a dead-lettered record's payload (its value as `readable` kept it), decoded again.

        Members rejected at the first decode were dead-lettered on their own then: a record whose payload
        decodes to some events gives those; one that gives none raises the first member's RejectedError.
        Avro payloads are binary: their dead-letter copy cannot be told from text, so they are not replayed.
        """
        if self.format == "avro":
            raise RejectedError("not_replayable", "Avro records cannot be replayed from the dead letter yet")
        if isinstance(payload, str):
            value = payload.encode("utf-8")
        elif isinstance(payload, bytes):
            value = payload
        else:  # a JSON payload the dead letter stored parsed
            value = msgspec.json.encode(payload)
        topic, _, _ = origin.message_id.rpartition("/")[0].rpartition("/")
        record = _Replayed(topic, origin.partition or 0, origin.offset or 0, 0, value)
        events, rejections = self.decode(record)
        if not events and rejections:
            raise RejectedError(rejections[0].reason, rejections[0].message)
        return events

    def decode(self, record: KafkaRecord) -> tuple[list[Event], list[Rejection]]:
        if record.value is None:  # a tombstone (compacted topics): nothing happened, nothing to send
            return [], []
        received_at = record.timestamp / 1000.0 if record.timestamp and record.timestamp > 0 else None
        try:
            if self.format == "avro":
                payload = self._avro(record.value)
                return self._dialect(self.avro_dialect, payload, record, received_at)
            if self.format == "native":
                return [native.decode(record.value, self.origin(record))], []
            try:
                payload = decode_json(record.value)
            except InvalidJson as err:
                raise RejectedError("invalid_json", f"value is not valid JSON: {err}") from None
            return self._dialect(self.format, payload, record, received_at)
        except RejectedError as err:
            return [], [Rejection(source=self.origin(record), reason=err.reason, message=err.message,
                                  raw=readable(record.value))]
        except Exception as err:  # a decoder bug must not stop the partition: dead-letter, keep going
            origin = self.origin(record)
            log.exception("source %s: cannot decode %s", self.source_id, origin.message_id)
            return [], [Rejection(source=origin, reason="decode_failed", message=repr(err), raw=readable(record.value))]

    def _avro(self, value: bytes) -> Any:
        if not self.confluent_framing:
            assert self.local_schema is not None
            return avro.decode(value, self.local_schema)
        schema_id, body = avro.split_confluent(value)
        if self.registry is None:  # framed, but the local schema is the one to use
            assert self.local_schema is not None
            return avro.decode(body, self.local_schema)
        if schema_id in self._unknown_schemas:
            raise self._unknown_schemas[schema_id]
        writer = self.registry.cached(schema_id)
        if writer is None:  # prepare() fetched every id of the batch; this is a caller bug
            raise RejectedError("unknown_schema", f"schema id {schema_id}: not fetched")
        # With a local schema as well, it is the reader schema: old writers resolve to its shape.
        return avro.decode(body, writer, self.local_schema)

    def _dialect(
        self, dialect: Dialect, payload: Any, record: KafkaRecord, received_at: float | None
    ) -> tuple[list[Event], list[Rejection]]:
        if dialect == "segment":
            return self._segment(payload, record, received_at)
        origin = self.origin(record)
        if dialect == "native":
            return [native.decode(payload, origin)], []
        batches = payload if isinstance(payload, list) else [payload]  # mparticle
        events, rejections = [], []
        for batch in batches:
            decoded, rejected = mparticle.decode_batch(
                batch, source_id=self.source_id, received_at=received_at,
                user_id_identity=self.mparticle_user_id_identity,
            )
            events += decoded
            rejections += [r for _, r in rejected]
        return _located(events, origin), _located(rejections, origin)

    def _segment(
        self, payload: Any, record: KafkaRecord, received_at: float | None
    ) -> tuple[list[Event], list[Rejection]]:
        """The record's Segment message(s); its origin (a SourceRef) is built only for a rejection."""
        batch = payload.get("batch") if isinstance(payload, dict) else None
        messages = batch if isinstance(batch, list) else [payload]
        context = payload.get("context") if batch is not None and isinstance(payload.get("context"), dict) else None
        events, rejections = [], []
        for index, message in enumerate(messages):
            try:
                event = segment.decode_message(
                    message, source_id=self.source_id, batch_context=context, received_at=received_at,
                    partition=record.partition, offset=record.offset,
                )
            except RejectedError as err:
                origin = self.origin(record)
                given = message.get("messageId") if isinstance(message, dict) else None
                message_id = given if isinstance(given, str) and given else f"{origin.message_id}:{index}"
                source = msgspec.structs.replace(origin, message_id=message_id)
                rejections.append(Rejection(source=source, reason=err.reason, message=err.message, raw=message))
                continue
            if event is not None:
                events.append(event)
        return events, rejections


def _located(items: list[Any], origin: SourceRef) -> list[Any]:
    """Stamp partition and offset on what a dialect decoder made (it knows nothing of Kafka)."""
    located = []
    for item in items:
        source = msgspec.structs.replace(item.source, partition=origin.partition, offset=origin.offset)
        if isinstance(item, Event):
            item.source = source
            located.append(item)
        else:  # a Rejection is frozen
            located.append(msgspec.structs.replace(item, source=source))
    return located


class _Replayed(NamedTuple):
    """A dead-lettered record rebuilt for `RecordDecoder.replay` (no broker timestamp: 0)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    value: bytes | None


def readable(value: bytes) -> Any:
    """The dead letter keeps a bad payload as text when it is text (readable, replayable), else bytes."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value
