"""Pipeline.emit: the acknowledgement contract (DELIVERED / REJECTED after the dead letter / RETRY)."""

from __future__ import annotations

from hub.connector import Outcome
from hub.delivery.dead_letter import DeadLetter
from hub.delivery.retry import RetryPolicy
from hub.delivery.runner import DestinationRunner
from hub.errors import RetryableError
from hub.events import Rejection, SourceRef
from hub.pipeline import Pipeline

from .fakes import ListSink, RecordingDestination, event

FAST = RetryPolicy(base_delay_secs=0.001, max_delay_secs=0.002, max_attempts=3, max_elapsed_secs=2)


class SkipOrExplode:
    """A stage that skips "skip", rejects "bad" and fans "order" out into two children."""

    async def apply(self, events):
        results = []
        for e in events:
            if e.message_id == "skip":
                results.append([])
            elif e.message_id == "bad":
                results.append(Rejection(source=e.source, reason="missing_item_id", message="itemId: required", raw=e.raw))
            elif e.message_id == "order":
                results.append([e.derive(0), e.derive(1)])
            else:
                results.append([e])
        return results


async def make(destination, stages=()):
    sink = ListSink()
    runner = DestinationRunner(destination, destination.config.batch_policy(), FAST)
    await runner.start()
    return Pipeline(stages, [runner], DeadLetter(sink, RetryPolicy(max_attempts=2, base_delay_secs=0.001))), sink, runner


async def test_outcomes_per_event_and_dead_letter_records():
    destination = RecordingDestination(reject_ids={"order:1"})
    pipeline, sink, runner = await make(destination, [SkipOrExplode()])
    decode_failure = Rejection(source=SourceRef(source_id="test", message_id="r0"), reason="invalid_json", message="x", raw="{")
    report = await pipeline.emit([event("ok"), event("skip"), event("bad"), event("order")], [decode_failure])
    await runner.close()
    assert report.outcomes == [Outcome.DELIVERED, Outcome.DELIVERED, Outcome.REJECTED, Outcome.REJECTED]
    assert destination.delivered == ["ok", "order:0"]
    by_reason = {r["reason"]: r for r in sink.records}
    assert set(by_reason) == {"invalid_json", "missing_item_id", "invalid_input"}
    assert by_reason["missing_item_id"]["payload"] == {"messageId": "bad"}
    assert by_reason["invalid_input"]["destination"] == "recording"
    assert by_reason["invalid_input"]["source"]["message_id"] == "order:1"
    assert by_reason["invalid_input"]["attempts"] >= 1
    assert report.outcome is Outcome.REJECTED and report.rejected == 2


async def test_undeliverable_is_retry_and_nothing_is_dead_lettered():
    destination = RecordingDestination(lambda batch, call: RetryableError("throttled", throttled=True))
    pipeline, sink, runner = await make(destination)
    report = await pipeline.emit([event("a")])
    await runner.close()
    assert report.outcome is Outcome.RETRY and sink.records == []


async def test_dead_letter_down_means_retry_not_acknowledged():
    destination = RecordingDestination()
    pipeline, sink, runner = await make(destination, [SkipOrExplode()])
    sink.fail = True
    report = await pipeline.emit([event("ok"), event("bad")])
    await runner.close()
    assert report.outcomes == [Outcome.DELIVERED, Outcome.RETRY]
    assert report.outcome is Outcome.RETRY


async def test_events_no_destination_accepts_are_settled():
    destination = RecordingDestination(kinds=["item"])
    pipeline, sink, runner = await make(destination)
    report = await pipeline.emit([event("a")])
    await runner.close()
    assert report.outcome is Outcome.DELIVERED and destination.calls == 0


class CountingObserver:
    """A DeliveryObserver that wants one destination and keeps the message ids it was told about."""

    def __init__(self, wanted):
        self.wanted = wanted
        self.seen: list[str] = []

    def wants(self, destination):
        return destination is self.wanted

    def observe(self, destination, units):
        self.seen.extend(unit.message_id for unit in units)


async def test_an_observer_sees_a_delivery_once_when_its_message_ends_retry_and_is_redelivered():
    counted = RecordingDestination(id="counted")
    flaky = RecordingDestination(lambda batch, call: RetryableError("503") if call <= 3 else None, id="flaky")
    runners = [DestinationRunner(d, d.config.batch_policy(), FAST) for d in (counted, flaky)]
    for runner in runners:
        await runner.start()
    observer = CountingObserver(counted)
    pipeline = Pipeline([], runners, DeadLetter(ListSink(), FAST), observer)
    first = await pipeline.emit([event("m1")])  # delivered to one destination, RETRY overall: redelivered
    second = await pipeline.emit([event("m1")])
    for runner in runners:
        await runner.close()
    assert (first.outcome, second.outcome) == (Outcome.RETRY, Outcome.DELIVERED)
    assert counted.delivered == ["m1", "m1"]  # sent twice (idempotent destinations make that harmless) ...
    assert observer.seen == ["m1"]  # ... and observed once, when the message settled


async def test_an_encoder_that_raises_costs_only_the_event_it_raised_on():
    class Fragile(RecordingDestination):
        def encode(self, events):
            if any(e.message_id == "boom" for e in events):
                raise KeyError("the payload's secret text")
            return super().encode(events)

    destination = Fragile()
    pipeline, sink, runner = await make(destination)
    report = await pipeline.emit([event("a"), event("boom"), event("b")])
    await runner.close()
    assert report.outcomes == [Outcome.DELIVERED, Outcome.REJECTED, Outcome.DELIVERED]
    assert destination.delivered == ["a", "b"]
    [record] = sink.records
    assert record["reason"] == "encoder_error" and "KeyError" in record["message"]
    assert "secret" not in record["message"]
