"""Kafka source internals without a broker: record decoding per format, settle-then-commit per partition."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import pytest

from connectors.formats import avro, native
from connectors.sources.kafka_decode import RecordDecoder
from connectors.sources.kafka_partitions import PartitionFlow
from connectors.sources.schema_registry import SchemaRegistry
from hub.connector import EmitReport, Outcome
from hub.delivery.retry import RetryPolicy
from hub.events import Event, EventKind, Rejection, SourceRef


@dataclass
class Record:
    offset: int
    value: bytes | None
    topic: str = "clicks"
    partition: int = 3
    timestamp: int = 1_700_000_000_000


def track(message_id: str, **extra) -> dict:
    return {"type": "track", "event": "Product Viewed", "userId": "u1", "messageId": message_id, **extra}


def encoded(message: object) -> bytes:
    return json.dumps(message).encode()


# ---- decoding ----------------------------------------------------------------------------------

def test_segment_records_single_or_batched_are_located_at_their_partition_and_offset():
    decoder = RecordDecoder("k", "segment")
    (event,), rejections = decoder.decode(Record(10, encoded(track("m1"))))
    assert rejections == [] and event.message_id == "m1"
    assert (event.source.source_id, event.source.partition, event.source.offset) == ("k", 3, 10)
    events, (rejection,) = decoder.decode(Record(11, encoded({"batch": [track("a"), {"type": "track"}, track("b")]})))
    assert [e.message_id for e in events] == ["a", "b"] and {e.source.offset for e in events} == {11}
    assert (rejection.reason, rejection.source.message_id, rejection.source.offset) == (
        "missing_identity", "clicks/3/11:1", 11)


@pytest.mark.parametrize("value, reason", [
    (b"\xff\xfe not json", "invalid_json"), (b"[1, 2", "invalid_json"), (b"42", "invalid_type"),
])
def test_poison_records_become_rejections_with_their_location(value, reason):
    events, (rejection,) = RecordDecoder("k", "segment").decode(Record(99, value))
    assert events == [] and rejection.reason == reason
    assert (rejection.source.partition, rejection.source.offset) == (3, 99)
    assert rejection.raw is not None


def test_tombstones_settle_with_nothing_to_send():
    assert RecordDecoder("k", "segment").decode(Record(1, None)) == ([], [])


def test_mparticle_records_and_native_events():
    batch = {"mpid": 5, "events": [{"event_type": "screen_view", "data": {"screen_name": "Home",
                                                                          "source_message_id": "s1"}}]}
    (event,), _ = RecordDecoder("k", "mparticle").decode(Record(4, encoded(batch)))
    assert (event.name, event.anonymous_id, event.source.offset) == ("Home", "5", 4)

    original = Event(kind=EventKind.INTERACTION, source=SourceRef(source_id="web", message_id="n1", request_id="r"),
                     timestamp=1_700_000_000.5, name="x", user_id="u", raw={"given": True})
    (decoded,), _ = RecordDecoder("k", "native").decode(Record(8, native.encode(original)))
    assert decoded.message_id == "n1" and decoded.raw == {"given": True}
    assert (decoded.source.source_id, decoded.source.offset, decoded.source.request_id) == ("k", 8, None)
    _, (rejection,) = RecordDecoder("k", "native").decode(Record(9, encoded({"kind": "nope"})))
    assert rejection.reason == "invalid_event"


SCHEMA = {"type": "record", "name": "T", "fields": [
    {"name": "type", "type": "string"}, {"name": "event", "type": "string"},
    {"name": "userId", "type": "string"}, {"name": "messageId", "type": "string"}]}


async def test_avro_records_fetch_each_writer_schema_once_and_reject_unknown_ids():
    requests = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        if request.url.path.endswith("/21"):
            return httpx.Response(200, json={"schema": json.dumps(SCHEMA)})
        return httpx.Response(404, json={"error_code": 40403, "message": "Schema not found"})

    registry = SchemaRegistry("http://r.test", transport=httpx.MockTransport(answer))
    decoder = RecordDecoder("k", "avro", registry=registry)
    parsed = avro.parse_schema(SCHEMA)
    records = [Record(i, avro.encode_confluent(21, parsed, {"type": "track", "event": "E", "userId": "u",
                                                             "messageId": f"m{i}"})) for i in range(3)]
    records.append(Record(3, avro.encode_confluent(22, parsed, {"type": "track", "event": "E", "userId": "u",
                                                                "messageId": "m3"})))
    records.append(Record(4, b"\x07garbage"))
    await decoder.prepare(records)
    await decoder.prepare(records)
    results = [decoder.decode(r) for r in records]
    assert [e[0].message_id for e, _ in results[:3]] == ["m0", "m1", "m2"]
    assert [r[0].reason for _, r in results[3:]] == ["unknown_schema", "invalid_avro"]
    assert sorted(requests) == ["/schemas/ids/21", "/schemas/ids/22", "/schemas/ids/22"]
    await registry.close()


def test_avro_with_a_local_schema_and_no_framing():
    parsed = avro.parse_schema(SCHEMA)
    decoder = RecordDecoder("k", "avro", local_schema=parsed, confluent_framing=False)
    body = avro.encode(parsed, {"type": "track", "event": "E", "userId": "u", "messageId": "bare"})
    (event,), _ = decoder.decode(Record(0, body))
    assert event.message_id == "bare"


# ---- settle-then-commit ------------------------------------------------------------------------

class ScriptedEmit:
    """A pipeline stand-in: answers each emit with the outcome `decide(event, call)` gives."""

    def __init__(self, decide=lambda event, call: Outcome.DELIVERED, dead_letter_fails=lambda call: False):
        self.decide, self.dead_letter_fails = decide, dead_letter_fails
        self.calls: list[tuple[list[str], list[str]]] = []
        self.rejected: list[Rejection] = []  # every rejection emitted, in order
        self.gate: asyncio.Event | None = None

    async def __call__(self, events: Sequence[Event], rejections: Sequence[Rejection]) -> EmitReport:
        self.calls.append(([e.message_id for e in events], [r.source.message_id for r in rejections]))
        self.rejected += rejections
        if self.gate is not None:
            await self.gate.wait()
        call = len(self.calls)
        report = EmitReport([self.decide(e, call) for e in events], list(rejections))
        report.dead_letter_failed = bool(rejections) and self.dead_letter_fails(call)
        return report


FAST_BACKOFF = RetryPolicy(base_delay_secs=0.001, max_delay_secs=0.005)


def flow_with(emit: ScriptedEmit) -> tuple[PartitionFlow, list[int | None]]:
    positions: list[int | None] = []
    flow = PartitionFlow("t-0", emit, RecordDecoder("k", "segment"),
                         lambda f: positions.append(f.commit_position()), FAST_BACKOFF)
    flow.start()
    return flow, positions


async def until(condition, timeout_secs: float = 2.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(wait(), timeout_secs)


async def test_a_retried_event_holds_the_commit_position_until_it_settles():
    emit = ScriptedEmit(lambda e, call: Outcome.RETRY if e.message_id == "m1" and call <= 2 else Outcome.DELIVERED)
    flow, positions = flow_with(emit)
    flow.add([Record(0, encoded(track("m0"))), Record(1, encoded(track("m1"))), Record(2, encoded(track("m2")))])
    await until(lambda: flow.commit_position() == 3)
    # Only the unsettled event is emitted again; the commit never passed offset 1 before it settled.
    assert [ids for ids, _ in emit.calls] == [["m0", "m1", "m2"], ["m1"], ["m1"]]
    assert positions == [1, 1, 3]
    await flow.stop(1)


async def test_batches_of_a_partition_are_emitted_in_order_one_at_a_time():
    emit = ScriptedEmit()
    emit.gate = asyncio.Event()
    flow, _ = flow_with(emit)
    flow.add([Record(5, encoded(track("a")))])
    flow.add([Record(6, encoded(track("b")))])
    await until(lambda: len(emit.calls) == 1)
    await asyncio.sleep(0.02)
    assert len(emit.calls) == 1 and flow.held == 2  # the second waits for the first to settle
    emit.gate.set()
    await until(lambda: flow.commit_position() == 7)
    assert [ids for ids, _ in emit.calls] == [["a"], ["b"]] and flow.held == 0
    await flow.stop(1)


async def test_fetches_queued_behind_an_emit_go_out_together_up_to_the_batch_limit():
    emit = ScriptedEmit()
    emit.gate = asyncio.Event()
    flow = PartitionFlow("t-0", emit, RecordDecoder("k", "segment"), lambda f: None, max_batch_records=3)
    flow.start()
    flow.add([Record(0, encoded(track("a")))])
    await until(lambda: len(emit.calls) == 1)
    flow.add([Record(1, encoded(track("b")))])
    flow.add([Record(2, encoded(track("c")))])
    flow.add([Record(3, encoded(track("d"))), Record(4, encoded(track("e")))])
    emit.gate.set()
    await until(lambda: flow.commit_position() == 5)
    # In order; b and c joined; d+e would pass the limit with them, and a fetch is never split.
    assert [ids for ids, _ in emit.calls] == [["a"], ["b", "c"], ["d", "e"]]
    await flow.stop(1)


async def test_rejections_settle_only_once_the_dead_letter_has_them():
    emit = ScriptedEmit(dead_letter_fails=lambda call: call == 1)
    flow, positions = flow_with(emit)
    flow.add([Record(0, b"not json"), Record(1, encoded(track("ok")))])
    await until(lambda: flow.commit_position() == 2)
    assert emit.calls == [(["ok"], ["clicks/3/0"]), ([], ["clicks/3/0"])]
    assert positions == [None, 2]


async def test_stop_drops_unsettled_work_without_passing_it():
    emit = ScriptedEmit(lambda e, call: Outcome.RETRY if e.message_id == "stuck" else Outcome.DELIVERED)
    flow, _ = flow_with(emit)
    flow.add([Record(40, encoded(track("fine"))), Record(41, encoded(track("stuck"))),
              Record(42, encoded(track("after")))])
    flow.add([Record(43, encoded(track("queued")))])
    await until(lambda: len(emit.calls) >= 2)
    await asyncio.wait_for(flow.stop(5), 1)  # a retry backoff does not hold up a rebalance
    assert flow.commit_position() == 41
    assert all("queued" not in ids for ids, _ in emit.calls)


# ---- the retry budget --------------------------------------------------------------------------

BUDGET = RetryPolicy(base_delay_secs=0.001, max_delay_secs=0.005, max_elapsed_secs=0.2)


async def test_a_record_still_retried_when_the_budget_is_spent_is_dead_lettered_whole_and_the_partition_goes_on():
    emit = ScriptedEmit(lambda e, call: Outcome.RETRY if e.message_id == "stuck" else Outcome.DELIVERED)
    positions: list[int | None] = []
    flow = PartitionFlow("t-0", emit, RecordDecoder("k", "segment"),
                         lambda f: positions.append(f.commit_position()), BUDGET)
    flow.start()
    stuck = encoded({"batch": [track("stuck"), track("sibling")]})
    flow.add([Record(7, encoded(track("fine"))), Record(8, stuck), Record(9, encoded(track("after")))])
    flow.add([Record(10, encoded(track("next")))])
    await until(lambda: flow.commit_position() == 11)
    await flow.stop(1)
    # Emitted again until the budget's time was spent, then the record alone is dead-lettered; the next batch
    # follows it.
    assert emit.calls[0] == (["fine", "stuck", "sibling", "after"], [])
    assert len(emit.calls) > 4 and set(map(str, emit.calls[1:-2])) == {str((["stuck"], []))}
    assert emit.calls[-2:] == [([], ["clicks/3/8"]), (["next"], [])]
    (rejection,) = emit.rejected
    assert rejection.reason == "retries_exhausted" and f"{len(emit.calls) - 2} emits" in rejection.message
    assert (rejection.source.source_id, rejection.source.partition, rejection.source.offset) == ("k", 3, 8)
    assert rejection.raw == stuck.decode()  # the record as received: `hub replay` decodes it again
    assert set(positions[:-2]) == {8} and positions[-2:] == [10, 11]  # never past 8 before it was dead-lettered


async def test_a_budget_spent_while_the_dead_letter_fails_holds_the_record_until_it_is_written():
    emit = ScriptedEmit(lambda e, call: Outcome.RETRY, dead_letter_fails=lambda call: call <= 5)
    flow = PartitionFlow("t-0", emit, RecordDecoder("k", "segment"), lambda f: None, BUDGET)
    flow.start()
    flow.add([Record(0, encoded(track("a")))])
    await until(lambda: flow.commit_position() == 1)
    await flow.stop(1)
    dead_letter_calls = [n for n, (ids, rejected) in enumerate(emit.calls, 1) if rejected]
    assert dead_letter_calls and dead_letter_calls[-1] > 5  # written only once the dead letter worked
    assert emit.calls[-1] == ([], ["clicks/3/0"])


def test_replay_decodes_a_dead_lettered_record_to_the_events_it_first_gave():
    from connectors.sources.kafka import KafkaSource
    from hub.connector import Context
    from hub.errors import RejectedError

    source = KafkaSource(kafka_config(id="k"), Context())
    record = Record(8, encoded({"batch": [track("stuck"), {"type": "track"}, track("sibling")]}))
    first, _ = source._decoder.decode(record)
    origin = source._decoder.origin(record)
    from connectors.sources.kafka_decode import readable

    again = source.decode(readable(record.value), origin)
    assert [(e.message_id, e.source.offset, e.name) for e in again] == [
        (e.message_id, e.source.offset, e.name) for e in first]
    with pytest.raises(RejectedError) as rejected:
        source.decode("not json", origin)
    assert rejected.value.reason == "invalid_json"


# ---- configuration -----------------------------------------------------------------------------

def kafka_config(**fields):
    from personalize_hub.config import parse_config

    return parse_config({"sources": [{"type": "kafka", "bootstrap_servers": "b:9092", "topics": ["t"],
                                      "group_id": "g", **fields}]}, {}).sources[0]


def test_security_settings_become_aiokafka_options_and_sasl_needs_credentials():
    from hub.errors import ConfigError

    plain = kafka_config().client_options()
    assert plain == {"bootstrap_servers": "b:9092", "security_protocol": "PLAINTEXT"}
    secured = kafka_config(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="hub",
                           sasl_password="s3cret").client_options()
    assert (secured["sasl_mechanism"], secured["sasl_plain_username"], secured["sasl_plain_password"]) == (
        "SCRAM-SHA-512", "hub", "s3cret")
    assert secured["ssl_context"] is not None
    with pytest.raises(ConfigError, match="needs sasl_username and sasl_password"):
        kafka_config(security_protocol="SASL_PLAINTEXT")


async def test_fetch_limits_reach_the_consumer_smaller_than_kafkas_defaults():
    from connectors.sources.kafka import KafkaSource
    from hub.connector import Context

    for fields, expected in (({}, (2_097_152, 524_288)),
                             ({"fetch_max_bytes": 4096, "max_partition_fetch_bytes": 2048}, (4096, 2048))):
        consumer = KafkaSource(kafka_config(**fields), Context())._new_consumer()  # never started: no broker needed
        try:
            assert (consumer._fetch_max_bytes, consumer._max_partition_fetch_bytes) == expected
        finally:
            await consumer.stop()


def test_avro_settings_are_checked_with_the_config(tmp_path):
    from hub.errors import ConfigError

    with pytest.raises(ConfigError, match="needs schema_registry_url or avro_schema"):
        kafka_config(format="avro")
    with pytest.raises(ConfigError, match="No such file"):
        kafka_config(format="avro", avro_schema=str(tmp_path / "missing.avsc"))
    (tmp_path / "bad.avsc").write_text('{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}')
    with pytest.raises(ConfigError, match="avro_schema"):
        kafka_config(format="avro", avro_schema=str(tmp_path / "bad.avsc"))
    (tmp_path / "good.avsc").write_text(json.dumps(SCHEMA))
    assert kafka_config(format="avro", avro_schema=str(tmp_path / "good.avsc")).local_schema()["name"] == "T"


async def test_close_releases_the_schema_registry_client_even_if_run_never_started():
    from connectors.sources.kafka import KafkaSource
    from hub.connector import Context

    source = KafkaSource(kafka_config(format="avro", schema_registry_url="http://127.0.0.1:9"), Context())
    registry_client = source._registry._client
    await source.close()
    assert registry_client.is_closed


# ---- pipelining (the hub's Pipeline: submit, then settle) ---------------------------------------

async def pipeline_with(destination):
    from hub.delivery.dead_letter import DeadLetter
    from hub.delivery.runner import DestinationRunner
    from hub.pipeline import Pipeline
    from tests.unit.hub.fakes import ListSink

    runner = DestinationRunner(destination, destination.config.batch_policy(), FAST_BACKOFF)
    await runner.start()
    return Pipeline([], [runner], DeadLetter(ListSink(), FAST_BACKOFF)), runner


async def test_a_pipelining_emit_gets_the_next_batches_before_the_first_settled_within_the_record_window():
    from tests.unit.hub.fakes import RecordingDestination

    gate = asyncio.Event()

    class Gated(RecordingDestination):
        async def send(self, batch):
            await gate.wait()
            await super().send(batch)

    destination = Gated()
    pipeline, runner = await pipeline_with(destination)
    positions: list[int | None] = []
    flow = PartitionFlow("t-0", pipeline, RecordDecoder("k", "segment"),
                         lambda f: positions.append(f.commit_position()), FAST_BACKOFF, max_batch_records=3)
    flow.start()
    for offset in range(5):
        flow.add([Record(offset, encoded(track(f"m{offset}")))])
        await asyncio.sleep(0.01)
    # Three records in flight (the window), none settled: the rest waits for room.
    await until(lambda: flow._in_flight_records == 3)
    await asyncio.sleep(0.02)
    assert flow._in_flight_records == 3 and flow.commit_position() is None
    gate.set()
    await until(lambda: flow.commit_position() == 5)
    await flow.stop(1)
    await runner.close()
    assert destination.delivered == [f"m{i}" for i in range(5)]


async def test_pipelined_batches_given_up_are_emitted_again_in_offset_order_and_none_overtakes():
    from hub.errors import RetryableError
    from tests.unit.hub.fakes import RecordingDestination

    failures = {"left": 2}

    def script(batch, call):  # the first batch's sends fail until the runner gives it up (3 attempts)
        if "m0" in {e.message_id for e in batch} and failures["left"] > 0:
            failures["left"] -= 1
            return RetryableError("503")
        return None

    destination = RecordingDestination(script)
    pipeline, runner = await pipeline_with(destination)
    runner.retry = RetryPolicy(base_delay_secs=0.02, max_delay_secs=0.02, max_attempts=2)
    flow = PartitionFlow("t-0", pipeline, RecordDecoder("k", "segment"), lambda f: None, FAST_BACKOFF,
                         max_batch_records=10)
    flow.start()
    for offset in range(4):  # one user: one partition key, one batch at a time at the destination
        flow.add([Record(offset, encoded(track(f"m{offset}")))])
        await asyncio.sleep(0.005)
    await until(lambda: flow.commit_position() == 4)
    await flow.stop(1)
    await runner.close()
    # Given up once (two sends), then redelivered: every event once, in offset order.
    assert sum("m0" in batch for batch in destination.batches) == 3 and failures["left"] == 0
    assert destination.delivered == ["m0", "m1", "m2", "m3"]


async def test_a_pipelined_flow_stopped_with_batches_in_flight_commits_only_what_settled():
    from tests.unit.hub.fakes import RecordingDestination

    gate = asyncio.Event()

    class Gated(RecordingDestination):  # "held" is never delivered while the flow is stopped
        async def send(self, batch):
            if "held" in {e.message_id for e in batch}:
                await gate.wait()
            await super().send(batch)

    destination = Gated(key=lambda e: e.message_id)
    pipeline, runner = await pipeline_with(destination)
    flow = PartitionFlow("t-0", pipeline, RecordDecoder("k", "segment"), lambda f: None, FAST_BACKOFF,
                         max_batch_records=8)
    flow.start()
    flow.add([Record(0, encoded(track("ok0"))), Record(1, encoded(track("ok1")))])
    await until(lambda: flow.commit_position() == 2)
    flow.add([Record(2, encoded(track("held"))), Record(3, encoded(track("ok3")))])
    flow.add([Record(4, encoded(track("ok4")))])
    await until(lambda: {"ok3", "ok4"} <= set(destination.delivered))
    await asyncio.wait_for(flow.stop(0.05), 1)  # the revoke grace bounds the wait
    assert flow.commit_position() == 2  # never past the unsettled record
    gate.set()
    await runner.close()


async def test_a_unit_given_up_after_its_flow_stopped_holds_nothing_back_and_does_not_keep_the_flow_alive():
    import gc
    import weakref

    from hub.errors import RetryableError
    from tests.unit.hub.fakes import RecordingDestination

    stopped_flow = asyncio.Event()

    class FailingAfterTheStop(RecordingDestination):  # the second (last) attempt fails once the flow stopped
        async def send(self, batch):
            if self.calls >= 1:
                await stopped_flow.wait()
            await super().send(batch)

    destination = FailingAfterTheStop(lambda batch, calls: RetryableError("503"))
    pipeline, runner = await pipeline_with(destination)
    runner.retry = RetryPolicy(base_delay_secs=0.001, max_delay_secs=0.001, max_attempts=2)
    flow = PartitionFlow("t-0", pipeline, RecordDecoder("k", "segment"), lambda f: None, FAST_BACKOFF,
                         max_batch_records=8)
    flow.start()
    flow.add([Record(0, encoded(track("m0")))])
    await until(lambda: destination.calls >= 1)
    await flow.stop(0.05)  # revoked while m0 is still being retried
    stopped_flow.set()
    await until(lambda: destination.calls >= 2 and not runner._in_flight)  # m0 given up after the stop
    assert not runner._held  # the flow's chain ended: nothing of it is held back for good
    stopped = weakref.ref(flow)
    del flow
    gc.collect()
    assert stopped() is None  # the runner holds a token, not the flow and its record window
    await runner.close()


async def test_a_failing_settler_is_logged_when_it_fails_not_at_the_stop(caplog):
    from tests.unit.hub.fakes import RecordingDestination

    pipeline, runner = await pipeline_with(RecordingDestination())
    flow = PartitionFlow("t-0", pipeline, RecordDecoder("k", "segment"), lambda f: None, FAST_BACKOFF,
                         max_batch_records=8)

    def broken(settlements, messages):
        raise RuntimeError("a bug")

    flow._apply = broken
    flow.start()
    flow.add([Record(0, encoded(track("m0")))])
    await until(lambda: "settling failed" in caplog.text)
    assert flow.commit_position() is None  # stalled, nothing committed past the record
    await flow.stop(0.05)
    await runner.close()
