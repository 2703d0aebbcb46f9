"""DestinationRunner: settles every event, retries, bisects rejected batches, honours partial failures."""

from __future__ import annotations

import asyncio

from hub.connector import Outcome
from hub.delivery.retry import RetryPolicy
from hub.delivery.runner import DestinationRunner
from hub.errors import PartialFailure, RejectedError, RetryableError

from .fakes import RecordingDestination, event

FAST = RetryPolicy(base_delay_secs=0.001, max_delay_secs=0.002, max_attempts=4, max_elapsed_secs=5)


async def run_all(destination, events, retry=FAST):
    runner = DestinationRunner(destination, destination.config.batch_policy(), retry)
    await runner.start()
    futures = [await runner.submit(e) for e in events]
    settlements = await asyncio.wait_for(asyncio.gather(*futures), 5)
    await runner.close()
    return settlements


async def test_batches_respect_max_events_and_deliver_everything():
    destination = RecordingDestination()
    settlements = await run_all(destination, [event(f"m{i}") for i in range(25)])
    assert all(s.outcome is Outcome.DELIVERED for s in settlements)
    assert max(len(b) for b in destination.batches) <= 10
    assert destination.delivered == [f"m{i}" for i in range(25)]


async def test_retryable_errors_are_retried_until_delivered():
    destination = RecordingDestination(lambda batch, call: RetryableError("503") if call <= 2 else None)
    settlements = await run_all(destination, [event("a"), event("b")])
    assert [s.outcome for s in settlements] == [Outcome.DELIVERED] * 2
    assert destination.calls == 3


async def test_retry_budget_exhausted_means_retry_outcome_not_loss():
    destination = RecordingDestination(lambda batch, call: RetryableError("503"))
    (settlement,) = await run_all(destination, [event("a")])
    assert settlement.outcome is Outcome.RETRY and settlement.reason == "retries_exhausted"
    assert destination.calls == FAST.max_attempts


async def test_rejected_batch_is_bisected_so_good_members_are_delivered():
    destination = RecordingDestination(reject_ids={"m3"})
    settlements = await run_all(destination, [event(f"m{i}") for i in range(10)])
    outcomes = {f"m{i}": s.outcome for i, s in enumerate(settlements)}
    assert outcomes.pop("m3") is Outcome.REJECTED
    assert set(outcomes.values()) == {Outcome.DELIVERED}
    assert destination.delivered == [f"m{i}" for i in range(10) if i != 3]  # order kept


async def test_partial_failure_settles_members_individually():
    def script(batch, call):
        if call == 1:
            return PartialFailure(rejected={0: RejectedError("invalid_input", "nope")}, retry={2: RetryableError("t")})
        return None

    destination = RecordingDestination(script)
    settlements = await run_all(destination, [event("a"), event("b"), event("c")])
    assert [s.outcome for s in settlements] == [Outcome.REJECTED, Outcome.DELIVERED, Outcome.DELIVERED]
    assert destination.batches == [["a", "b", "c"], ["c"]]


async def test_partition_order_is_kept_across_retries():
    failed_once = set()

    def script(batch, call):
        first = batch[0].message_id
        if first not in failed_once:
            failed_once.add(first)
            return RetryableError("flaky")
        return None

    destination = RecordingDestination(script, batch={"max_events": 2})
    events = [event(f"{u}{i}", user=u) for i in range(6) for u in ("x", "y")]
    await run_all(destination, events)
    for user in ("x", "y"):
        got = [m for m in destination.delivered if m.startswith(user)]
        assert got == [f"{user}{i}" for i in range(6)]


async def test_a_crashing_destination_leaves_events_unsettled_for_redelivery():
    destination = RecordingDestination(lambda batch, call: ZeroDivisionError("bug"))
    (settlement,) = await run_all(destination, [event("a")])
    assert settlement.outcome is Outcome.RETRY


async def test_submit_batch_queues_in_order_and_waits_for_room_under_backpressure():
    destination = RecordingDestination()
    runner = DestinationRunner(destination, destination.config.batch_policy(), FAST, max_pending=3)
    await runner.start()
    ticket = await asyncio.wait_for(runner.submit_batch([event(f"m{i}") for i in range(25)]), 5)
    settlements = await asyncio.wait_for(ticket, 5)
    assert ticket.settlements == settlements and ticket.delivered
    await runner.close()
    assert [s.outcome for s in settlements] == [Outcome.DELIVERED] * 25
    assert destination.delivered == [f"m{i}" for i in range(25)]
    assert max(len(b) for b in destination.batches) <= 3  # never more than max_pending were queued


async def test_submit_all_queues_in_order_and_waits_for_room_under_backpressure():
    destination = RecordingDestination()
    runner = DestinationRunner(destination, destination.config.batch_policy(), FAST, max_pending=3)
    await runner.start()
    futures = await asyncio.wait_for(runner.submit_all([event(f"m{i}") for i in range(25)]), 5)
    settlements = await asyncio.wait_for(asyncio.gather(*futures), 5)
    await runner.close()
    assert [s.outcome for s in settlements] == [Outcome.DELIVERED] * 25
    assert destination.delivered == [f"m{i}" for i in range(25)]
    assert max(len(b) for b in destination.batches) <= 3  # never more than max_pending were queued


async def test_a_chain_never_overtakes_a_unit_of_its_key_given_up_until_it_resumes():
    # Both sends of the first batch (key x) fail: "x0" is given up.
    failing = {"x0"}
    destination = RecordingDestination(
        lambda batch, call: RetryableError("503") if failing & {e.message_id for e in batch} else None,
        key=lambda e: e.user_id)
    runner = DestinationRunner(destination, destination.config.batch_policy(),
                               RetryPolicy(base_delay_secs=0.01, max_delay_secs=0.01, max_attempts=2))
    chain = object()
    await runner.start()
    first = await runner.submit_batch([event("x0", user="x")], chain=chain)
    await until(lambda: destination.calls >= 1)  # in flight, backing off (or given up already: alike)
    second = await runner.submit_batch([event("x1", user="x"), event("y1", user="y")], chain=chain)
    assert [s.outcome for s in await asyncio.wait_for(first, 5)] == [Outcome.RETRY] and first.retry
    # Queued behind it under key x: held back (RETRY), never sent; key y goes on.
    assert [s.reason for s in await asyncio.wait_for(second, 5)] == ["held_back", None]
    # Submitted later: held back too, but only in its chain.
    later = await runner.submit_batch([event("x2", user="x")], chain=chain)
    other_chain = await runner.submit_batch([event("x3", user="x")], chain=object())
    assert [s.reason for s in await asyncio.wait_for(later, 5)] == ["held_back"]
    assert (await asyncio.wait_for(other_chain, 5))[0].outcome is Outcome.DELIVERED
    runner.resume(chain)  # the source redelivers, in order
    failing.clear()
    again = await runner.submit_batch([event("x0", user="x"), event("x1", user="x"), event("x2", user="x")],
                                      chain=chain)
    assert all(s.outcome is Outcome.DELIVERED for s in await asyncio.wait_for(again, 5))
    await runner.close()
    assert [m for m in destination.delivered if m.startswith("x")] == ["x3", "x0", "x1", "x2"]


async def until(condition, timeout_secs: float = 2.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(wait(), timeout_secs)


async def test_a_chained_unit_waiting_for_room_is_held_back_if_its_key_was_given_up_meanwhile():
    # One slot and room for one queued unit: x1 waits for room while x0 is being given up.
    destination = RecordingDestination(
        lambda batch, call: RetryableError("503") if "x0" in {e.message_id for e in batch} else None,
        key=lambda e: e.user_id, batch={"max_in_flight": 1})
    runner = DestinationRunner(destination, destination.config.batch_policy(),
                               RetryPolicy(base_delay_secs=0.05, max_delay_secs=0.05, max_attempts=2),
                               max_pending=1)
    chain = object()
    await runner.start()
    first = await runner.submit_batch([event("x0", user="x")], chain=chain)
    await until(lambda: destination.calls >= 1)
    submitting = asyncio.create_task(runner.submit_batch([event("y1", user="y"), event("x1", user="x")],
                                                         chain=chain))
    assert [s.outcome for s in await asyncio.wait_for(first, 5)] == [Outcome.RETRY]
    second = await asyncio.wait_for(submitting, 5)
    assert [s.reason for s in await asyncio.wait_for(second, 5)] == [None, "held_back"]
    await runner.close()
    assert "x1" not in destination.delivered


async def test_a_bisected_batch_sends_no_unit_of_a_chain_after_its_first_half_was_given_up():
    def script(batch, call):
        ids = [e.message_id for e in batch]
        if len(ids) > 1:
            return RejectedError("invalid_input", "bad member somewhere in the batch")
        return RetryableError("503") if ids == ["x0"] else None  # x0 alone: never delivered

    destination = RecordingDestination(script, key=lambda e: e.user_id, batch={"max_wait_secs": 0.05})
    runner = DestinationRunner(destination, destination.config.batch_policy(),
                               RetryPolicy(base_delay_secs=0.01, max_delay_secs=0.01, max_attempts=2))
    chain = object()
    await runner.start()
    ticket = await runner.submit_batch([event("x0", user="x"), event("x1", user="x")], chain=chain)
    assert [s.reason for s in await asyncio.wait_for(ticket, 5)] == ["retries_exhausted", "held_back"]
    await runner.close()
    assert "x1" not in destination.delivered


async def test_a_micro_batch_queued_across_a_resume_keeps_the_held_back_order_of_its_own_units():
    gate = asyncio.Event()

    class Gated(RecordingDestination):  # y's sends wait for the gate: x2 then waits for room
        async def send(self, batch):
            if any(e.user_id == "y" for e in batch):
                await gate.wait()
            await super().send(batch)

    destination = Gated(lambda batch, call: RetryableError("503") if "x0" in {e.message_id for e in batch} else None,
                        key=lambda e: e.user_id, batch={"max_in_flight": 1})
    runner = DestinationRunner(destination, destination.config.batch_policy(),
                               RetryPolicy(base_delay_secs=0.01, max_delay_secs=0.01, max_attempts=2), max_pending=1)
    chain = object()
    await runner.start()
    first = await runner.submit_batch([event("x0", user="x")], chain=chain)
    assert [s.outcome for s in await asyncio.wait_for(first, 5)] == [Outcome.RETRY]  # x held back from now
    submitting = asyncio.create_task(runner.submit_batch(
        [event("x1", user="x"), event("y1", user="y"), event("y2", user="y"), event("x2", user="x")], chain=chain))
    await until(lambda: destination.calls >= 2 and runner._batcher.pending == 1)  # y1 sending, y2 queued, x2 waits
    runner.resume(chain)  # the source redelivers from x0 (x1 was held back): x2 must not go before it
    gate.set()
    second = await asyncio.wait_for(submitting, 5)
    assert [s.reason for s in await asyncio.wait_for(second, 5)] == ["held_back", None, None, "held_back"]
    await runner.close()
    assert "x2" not in destination.delivered


async def test_a_micro_batch_never_sends_a_unit_after_its_own_earlier_unit_of_that_key_was_given_up():
    # Unchained (a plain emit, e.g. a partition's redelivery): x0 and x1 go in calls of their own.
    destination = RecordingDestination(
        lambda batch, call: RetryableError("503") if "x0" in {e.message_id for e in batch} else None,
        key=lambda e: e.user_id, batch={"max_events": 1})
    runner = DestinationRunner(destination, destination.config.batch_policy(),
                               RetryPolicy(base_delay_secs=0.01, max_delay_secs=0.01, max_attempts=2))
    await runner.start()
    ticket = await runner.submit_batch([event("x0", user="x"), event("y0", user="y"), event("x1", user="x")])
    assert [s.reason for s in await asyncio.wait_for(ticket, 5)] == ["retries_exhausted", None, "held_back"]
    await runner.close()
    assert destination.delivered == ["y0"]


async def test_a_micro_batch_whose_units_of_a_key_were_delivered_is_not_held_back_by_anothers_given_up():
    gate = asyncio.Event()

    def script(batch, call):  # x1 is never delivered; the rest of its call is
        ids = [e.message_id for e in batch]
        return PartialFailure(retry={ids.index("x1"): RetryableError("503")}) if "x1" in ids else None

    class Gated(RecordingDestination):  # x0 is sent alone; x1 and x2 are then sent together
        async def send(self, batch):
            await gate.wait()
            await super().send(batch)

    destination = Gated(script, key=lambda e: e.user_id, batch={"max_events": 2})
    runner = DestinationRunner(destination, destination.config.batch_policy(),
                               RetryPolicy(base_delay_secs=0.01, max_delay_secs=0.01, max_attempts=2))
    await runner.start()
    first = await runner.submit_batch([event("x0", user="x")])
    await until(lambda: runner._batcher.pending == 0)  # x0 in flight
    theirs = await runner.submit_batch([event("x1", user="x")])
    ours = await runner.submit_batch([event("x2", user="x"), event("x3", user="x")])  # x3 queued behind
    gate.set()
    assert [s.outcome for s in await asyncio.wait_for(first, 5)] == [Outcome.DELIVERED]
    assert [s.reason for s in await asyncio.wait_for(theirs, 5)] == ["retries_exhausted"]
    # x2 was delivered with x1, which was given up: x3 follows x2, not x1 (another micro-batch).
    assert [s.outcome for s in await asyncio.wait_for(ours, 5)] == [Outcome.DELIVERED, Outcome.DELIVERED]
    await runner.close()
