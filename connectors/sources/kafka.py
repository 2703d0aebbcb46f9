"""Kafka consumer-group source: commits per partition only what the pipeline settled (at-least-once)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from fastavro.types import Schema
from pydantic import Field, PrivateAttr, model_validator

from connectors.formats import avro
from connectors.kafka_connection import KafkaConnection
from connectors.sources.kafka_decode import RecordDecoder
from connectors.sources.kafka_partitions import PartitionFlow
from connectors.sources.schema_registry import SchemaRegistry
from hub import telemetry
from hub.connector import Context, Emit, Source, SourceConfig
from hub.errors import RejectedError
from hub.events import Event, SourceRef
from hub.secret import Secret

log = logging.getLogger(__name__)

_LAG_EVERY_SECS = 1.0


class KafkaSourceConfig(SourceConfig, KafkaConnection):
    """Consumes topics of Segment, mParticle or hub JSON, or Avro, in a consumer group."""

    type: Literal["kafka"]
    example = {"type": "kafka", "id": "clickstream", "bootstrap_servers": "${KAFKA_BOOTSTRAP}",
               "topics": ["clickstream"], "group_id": "personalize-hub", "format": "segment"}
    topics: list[str] = Field(..., min_length=1, description="Topics to consume.")
    group_id: str = Field(..., min_length=1, description="Consumer group; hub processes sharing it split the partitions.")
    format: Literal["segment", "mparticle", "native", "avro"] = Field(
        "segment",
        description="Record values: `segment` (a message or {batch: [...]}), `mparticle` (a batch or a list of "
                    "batches), `native` (the hub's Event JSON) or `avro` (see the avro_* fields).",
    )
    avro_dialect: Literal["segment", "mparticle", "native"] = Field(
        "segment", description="With format avro: which dialect the decoded Avro record is in."
    )
    schema_registry_url: str | None = Field(
        None, description="Confluent-compatible Schema Registry: Avro records carry its schema id (Confluent wire format)."
    )
    schema_registry_auth: Secret | None = Field(None, description="`user:password` for the schema registry.")
    avro_schema: Path | None = Field(
        None, description="Local .avsc: the writer schema without a registry, the reader schema with one."
    )
    avro_framing: Literal["confluent", "none"] | None = Field(
        None, description="Whether Avro values start with the 5-byte Confluent header; default: only with a registry."
    )
    mparticle_user_id_identity: str = Field(
        "customer_id", description="With mParticle records: the user_identities entry that is the user id (or `mpid`)."
    )
    start_from: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a group with no committed offset starts (earliest: nothing is skipped)."
    )
    # 5000, not 1000: bench/streaming_throughput.py needed 178 PutEvents calls per 1000 events at 1000 and
    # 137 at 5000, for a stream whose floor is 123: the quota (1000 calls/s) then carries 30% more events.
    max_batch_records: int = Field(
        5000, ge=1,
        description="Most records of a partition handed to the pipeline and not yet settled, in micro-batches of "
                    "a quarter of it submitted one behind the other. More puts more of a session's events into "
                    "each PutEvents call (fewer calls against the quota); fewer commit sooner.",
    )
    max_held_records_per_partition: int = Field(
        10_000, ge=1, description="Fetched but uncommitted records per partition before it is paused (backpressure)."
    )
    # 2 MiB and 512 KiB, not Kafka's 50 MiB and 1 MiB: a fetch answer of every assigned partition's share (4 MiB for
    # 4 partitions) is held, and copied as asyncio's StreamReader buffer grows, before the hub takes a record. On
    # bench/streaming_throughput.py the hub's peak RSS fell from 410-430 to 285 MiB at the same calls per 1000 events;
    # a consumer's CPU per record was unchanged within noise (at 1 MiB and 256 KiB the extra fetches cost ~0.4 µs).
    fetch_max_bytes: int = Field(
        2_097_152, ge=1024,
        description="Most bytes of one fetch answer, all partitions (Kafka's fetch.max.bytes; a first record "
                    "batch larger than this is still returned whole).",
    )
    max_partition_fetch_bytes: int = Field(
        524_288, ge=1024, description="Most bytes of one partition in a fetch answer (Kafka's max.partition.fetch.bytes).",
    )
    session_timeout_secs: float = Field(10.0, gt=0, description="Group session timeout (Kafka's session.timeout.ms).")
    heartbeat_interval_secs: float = Field(3.0, gt=0, description="Group heartbeat interval.")
    rebalance_timeout_secs: float | None = Field(
        None, gt=0, description="How long the group waits for members to rejoin; default: the session timeout."
    )
    revoke_grace_secs: float = Field(
        5.0, ge=0,
        description="On rebalance, how long an in-flight batch of a revoked partition may take to settle before "
                    "it is dropped uncommitted (the partition's next owner redelivers it).",
    )

    _local_schema: Schema | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check_avro(self) -> KafkaSourceConfig:
        if self.format == "avro" and self.schema_registry_url is None and self.avro_schema is None:
            raise ValueError("format avro needs schema_registry_url or avro_schema")
        if self.avro_framing == "none" and self.avro_schema is None:
            raise ValueError("avro_framing none needs avro_schema (there is no schema id to look up)")
        if self.avro_schema is not None:  # parsed with the config, so `hub check` reports a bad file
            try:
                self._local_schema = avro.load_schema(self.avro_schema)
            except OSError as err:
                raise ValueError(f"avro_schema: {err.strerror}: {self.avro_schema}") from None
            except RejectedError as err:
                raise ValueError(f"avro_schema: {err.message}") from None
        return self

    def local_schema(self) -> Schema | None:
        return self._local_schema


class KafkaSource(Source):
    """Kafka consumer group source; a partition's offset is committed once its micro-batches up to it settled.

    With the hub's pipeline (a PipelinedEmit) each partition submits its next micro-batches before the
    earlier ones settled (connectors/sources/kafka_partitions.py); with a plain Emit, one at a time."""

    Config = KafkaSourceConfig
    config: KafkaSourceConfig

    def __init__(self, config: KafkaSourceConfig, context: Context):
        super().__init__(config, context)
        self.flows: dict[TopicPartition, PartitionFlow] = {}
        self._paused: set[TopicPartition] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._emit: Emit | None = None
        self._commit_wanted = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._registry: SchemaRegistry | None = None
        self._decoder = self._build_decoder()

    def _build_decoder(self) -> RecordDecoder:
        config = self.config
        if config.format == "avro" and config.schema_registry_url:
            auth = None
            if config.schema_registry_auth is not None:
                user, _, password = config.schema_registry_auth.get_secret_value().partition(":")
                auth = (user, password)
            self._registry = SchemaRegistry(config.schema_registry_url, auth=auth)
        local = config.local_schema()
        framing = config.avro_framing or ("confluent" if self._registry else "none")
        return RecordDecoder(
            config.id, config.format, avro_dialect=config.avro_dialect, registry=self._registry,
            local_schema=local, confluent_framing=framing == "confluent",
            mparticle_user_id_identity=config.mparticle_user_id_identity,
        )

    def decode(self, payload: Any, source: SourceRef) -> list[Event]:
        """A dead-lettered record's payload decoded again (`hub replay`): a record that could not be decoded,
        or one dead-lettered after the retry budget (`retries_exhausted`)."""
        return self._decoder.replay(payload, source)

    async def run(self, emit: Emit) -> None:
        self._emit = emit
        consumer = await self._connect()
        committer = asyncio.create_task(self._commit_loop(), name=f"kafka-commit:{self.config.id}")
        next_lag = 0.0
        try:
            while True:
                try:
                    fetched = await consumer.getmany(timeout_ms=200, max_records=self.config.max_batch_records)
                except KafkaError as err:  # keep consuming once the cluster recovers; never stop silently
                    log.warning("kafka %s: fetch failed (%s); retrying", self.config.id, err)
                    await asyncio.sleep(1.0)
                    continue
                for tp, records in fetched.items():
                    flow = self.flows.get(tp)
                    if flow is not None:  # else revoked meanwhile: its next owner reads these again
                        flow.add(records)
                        self._apply_backpressure(flow, tp)
                if time.monotonic() >= next_lag:
                    self._report_lag()
                    next_lag = time.monotonic() + _LAG_EVERY_SECS
        finally:
            await self._shut_down(committer)

    def _new_consumer(self) -> AIOKafkaConsumer:
        config = self.config
        consumer = AIOKafkaConsumer(
            **config.client_options(),
            group_id=config.group_id,
            enable_auto_commit=False,
            auto_offset_reset=config.start_from,
            fetch_max_bytes=config.fetch_max_bytes,
            max_partition_fetch_bytes=config.max_partition_fetch_bytes,
            session_timeout_ms=int(config.session_timeout_secs * 1000),
            heartbeat_interval_ms=int(config.heartbeat_interval_secs * 1000),
            rebalance_timeout_ms=int((config.rebalance_timeout_secs or config.session_timeout_secs) * 1000),
        )
        consumer.subscribe(config.topics, listener=_Rebalance(self))
        return consumer

    async def _connect(self) -> AIOKafkaConsumer:
        """A started consumer, waiting for the brokers rather than failing the hub while they are not up."""
        delay_secs = 0.5
        while True:
            consumer = self._consumer = self._new_consumer()  # the rebalance listener may run inside start()
            try:
                await consumer.start()
                return consumer
            except KafkaError as err:
                log.warning("kafka %s: cannot reach %s (%s); retry in %.1fs",
                            self.config.id, self.config.bootstrap_servers, err, delay_secs)
                await consumer.stop()
            except BaseException:  # cancelled while connecting: release the half-started client
                await consumer.stop()
                raise
            await asyncio.sleep(delay_secs)
            delay_secs = min(delay_secs * 2, 30.0)

    async def _shut_down(self, committer: asyncio.Task[None]) -> None:
        """Stop every partition (letting in-flight batches settle), commit what settled, leave the group."""
        flows = list(self.flows.items())
        await asyncio.gather(*(flow.stop(self.config.revoke_grace_secs) for _, flow in flows))
        committer.cancel()
        await asyncio.gather(committer, return_exceptions=True)
        await self._commit([tp for tp, _ in flows])
        for tp, _ in flows:
            self._forget(tp)
        if self._consumer is not None:
            await self._consumer.stop()
        if self._registry is not None:
            await self._registry.close()

    def _apply_backpressure(self, flow: PartitionFlow, tp: TopicPartition) -> None:
        """Pause a partition holding too many uncommitted records; resume it once half have settled."""
        assert self._consumer is not None
        limit = self.config.max_held_records_per_partition
        if tp not in self._paused and flow.held >= limit:
            self._consumer.pause(tp)
            self._paused.add(tp)
        elif tp in self._paused and flow.held <= limit // 2 and tp in self._consumer.assignment():
            self._consumer.resume(tp)
            self._paused.discard(tp)

    def _on_progress(self, tp: TopicPartition, flow: PartitionFlow) -> None:
        self._commit_wanted.set()
        if self.flows.get(tp) is flow:
            flow.commit_position()
            self._apply_backpressure(flow, tp)

    async def _commit_loop(self) -> None:
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            if not await self._commit(list(self.flows)):
                self._commit_wanted.set()
                await asyncio.sleep(0.5)

    async def _commit(self, partitions: list[TopicPartition]) -> bool:
        """Commit each partition's settled prefix; False when the commit should be tried again."""
        assert self._consumer is not None
        async with self._commit_lock:
            offsets = {}
            for tp in partitions:
                flow = self.flows.get(tp)
                position = flow.commit_position() if flow else None
                if flow is not None and position is not None and position != flow.committed:
                    offsets[tp] = position
            if not offsets:
                return True
            try:
                await self._consumer.commit(offsets)
            except CommitFailedError as err:  # the group rebalanced: the new assignment starts over
                log.warning("kafka %s: commit refused (%s); records will be redelivered", self.config.id, err)
                return True
            except KafkaError as err:
                log.warning("kafka %s: commit failed (%s); will retry", self.config.id, err)
                return False
            for tp, position in offsets.items():
                if tp in self.flows:
                    self.flows[tp].committed = position
            return True

    def _report_lag(self) -> None:
        """Messages behind the high watermark, per partition: highwater − committed (what a restart rereads).

        Computed from the fetch's high watermark rather than `end_offsets()`, which tansu gets wrong
        after multi-record batches (docs/reference/platform.md#kafka-tansu).
        """
        assert self._consumer is not None
        for tp, flow in self.flows.items():
            highwater = self._consumer.highwater(tp)
            base = flow.committed if flow.committed is not None else flow.first_offset
            if highwater is not None and base is not None:
                telemetry.CONSUMER_LAG.labels(self.config.id, _label(tp)).set(max(0, highwater - base))

    def _assigned(self, partitions: set[TopicPartition]) -> None:
        assert self._emit is not None
        for tp in partitions:
            if tp not in self.flows:
                flow = PartitionFlow(f"{self.config.id}:{_label(tp)}", self._emit, self._decoder,
                                     functools.partial(self._on_progress, tp), self.context.retry,
                                     max_batch_records=self.config.max_batch_records)
                self.flows[tp] = flow
                flow.start()

    async def _revoked(self, partitions: set[TopicPartition]) -> None:
        """Let in-flight batches of revoked partitions settle (bounded), commit what settled, drop the rest."""
        flows = [(tp, self.flows[tp]) for tp in partitions if tp in self.flows]
        await asyncio.gather(*(flow.stop(self.config.revoke_grace_secs) for _, flow in flows))
        await self._commit([tp for tp, _ in flows])
        for tp, _ in flows:
            self._forget(tp)

    def _forget(self, tp: TopicPartition) -> None:
        self.flows.pop(tp, None)
        self._paused.discard(tp)
        try:
            telemetry.CONSUMER_LAG.remove(self.config.id, _label(tp))
        except KeyError:
            pass

    async def close(self) -> None:
        """`run`'s cancellation stopped the consumer; the registry client exists from `__init__`, run or not."""
        if self._registry is not None:
            await self._registry.close()


class _Rebalance(ConsumerRebalanceListener):
    """aiokafka calls this around every rebalance, before the partitions move to another member."""

    def __init__(self, source: KafkaSource):
        self.source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.source._revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.source._assigned(set(assigned))


def _label(tp: TopicPartition) -> str:
    return f"{tp.topic}-{tp.partition}"
