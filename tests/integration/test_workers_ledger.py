"""The delivery ledger, run records and shard locks on real Redis (their Lua scripts run only there)."""

from __future__ import annotations

import time

import pytest
import redis
import redis.asyncio

from tests.integration.workers_support import isolated_redis_url
from workers.keys import ledger_key, run_key, sync_key
from workers.ledger import SENDING, SENT, UNCHANGED, UNKNOWN, Ledger, failed
from workers.runs import RunState, Runs
from workers.slices import ShardLock, SliceBusy

pytestmark = pytest.mark.integration
REDIS_DB = 13


@pytest.fixture
def url(redis_url):
    return isolated_redis_url(redis_url, REDIS_DB)


async def run_counters(client: redis.asyncio.Redis, run_id: str) -> dict[str, int]:
    """A run's counters hash as names → numbers."""
    return {k.decode(): int(v) for k, v in (await client.hgetall(run_key(run_id))).items()}


async def test_settle_keeps_counters_exact_when_repeated(url):
    client = redis.asyncio.Redis.from_url(url)
    ledger = Ledger(client, "run-1", "job", ttl_secs=60, sync_ttl_secs=120)
    try:
        await ledger.settle("braze", [("u1", SENDING), ("u2", SENDING), ("ü3", SENDING)])
        await ledger.settle("braze", [("u1", SENT), ("u2", failed("http_400")), ("ü3", SENT)],
                            [("u1", "d1"), ("ü3", "d3")])
        await ledger.settle("braze", [("u1", SENT), ("u2", failed("http_400"))], [("u1", "d1")])  # a repeat
        counters = await run_counters(client, "run-1")
        assert counters == {"dest|braze|sending": 0, "dest|braze|sent": 2, "dest|braze|failed:http_400": 1}
        found = await ledger.lookup(["braze", "email"], ["u1", "u2", "ü3", "u4"])
        assert found["braze"] == ([SENT, "failed:http_400", SENT, None], ["d1", None, "d3", None], [None] * 4)
        assert found["email"] == ([None] * 4, [None] * 4, [None] * 4)
        assert 0 < await client.ttl(ledger_key("run-1", "braze")) <= 60
        assert 60 < await client.ttl(sync_key("job", "braze")) <= 120
    finally:
        await client.aclose()


async def test_a_state_can_move_to_unknown_and_is_counted_once(url):
    client = redis.asyncio.Redis.from_url(url)
    ledger = Ledger(client, "run-2", "job", ttl_secs=60, sync_ttl_secs=60)
    try:
        await ledger.settle("email", [("u1", SENDING)])
        await ledger.settle("email", [("u1", UNKNOWN)])
        await ledger.settle("email", [("u1", UNKNOWN)])
        assert await client.hget(run_key("run-2"), "dest|email|unknown") == b"1"
        assert await client.hget(run_key("run-2"), "dest|email|sending") == b"0"
    finally:
        await client.aclose()


def test_runs_are_created_once_and_a_final_state_sticks(url):
    runs = Runs(redis.Redis.from_url(url), ttl_secs=60)
    assert runs.create("r1", "job", "inference") and not runs.create("r1", "job", "inference")
    runs.set_state("r1", RunState.EXPORTING)
    runs.fail("r1", "batch job failed: bad data")
    runs.set_state("r1", RunState.EXPORTING)  # a late duplicate task
    assert runs.get("r1")["state"] == "failed" and runs.get("r1")["error"] == "batch job failed: bad data"
    assert runs.recent("job") == ["r1"]


def test_report_follows_each_shards_chain_of_slices(url):
    runs = Runs(redis.Redis.from_url(url), ttl_secs=60)
    runs.create("r2", "job", "inference")
    runs.update("r2", output_bytes=1000, shards=2)
    runs.record_slice("r2", 0, 0, {"lines": 10, "errors": {"invalid_json": 1}, "next_offset": 300, "finished": False})
    # Slice 300 ran twice and stopped in different places: the latest record is followed.
    runs.record_slice("r2", 0, 300, {"lines": 5, "next_offset": 400, "finished": False})
    runs.record_slice("r2", 0, 400, {"lines": 4, "next_offset": 501, "finished": True})
    runs.record_slice("r2", 0, 350, {"lines": 99, "next_offset": 501, "finished": True})  # an orphan
    runs.record_slice("r2", 1, 500, {"lines": 7, "errors": {"invalid_json": 2}, "next_offset": 1000, "finished": True})
    report = runs.report("r2")
    assert report.lines_out == 26 and report.lines_with_errors == {"invalid_json": 3}


def test_a_shard_lock_is_exclusive_and_outlives_a_dead_holder_only_briefly(url):
    client = redis.Redis.from_url(url)
    holder = ShardLock(client, "r3", 0, ttl_secs=0.5)
    holder.__enter__()
    time.sleep(0.7)  # longer than the TTL: the keep-alive thread extends it
    with pytest.raises(SliceBusy):
        ShardLock(client, "r3", 0, ttl_secs=0.5).__enter__()
    holder._stop.set()  # the holder dies without releasing: no more extensions
    holder._thread.join()
    time.sleep(0.6)
    with ShardLock(client, "r3", 0, ttl_secs=0.5):
        pass
    with ShardLock(client, "r3", 0, ttl_secs=0.5):  # released on exit
        pass


async def test_a_pending_mark_outlives_sending_and_unknown_and_an_outcome_clears_it(url):
    client = redis.asyncio.Redis.from_url(url)
    ledger = Ledger(client, "run-4", "job", ttl_secs=60, sync_ttl_secs=120)
    try:
        await ledger.settle("email", [("u1", SENDING), ("u2", SENDING)], pending=[("u1", "d1:run-4"), ("u2", "d2:run-4")])
        await ledger.settle("email", [("u1", UNKNOWN), ("u2", SENT)], [("u2", "d2")])
        later = Ledger(client, "run-5", "job", ttl_secs=60, sync_ttl_secs=120)
        found = await later.lookup(["email"], ["u1", "u2"])
        assert found["email"] == ([None, None], [None, "d2"], ["d1:run-4", None])
        assert await ledger.in_doubt("email") == {"u1": "d1:run-4"}
        await ledger.resolve("email", {"u1": "d1:run-4"}, arrived=True)
        assert (await later.lookup(["email"], ["u1"]))["email"] == ([None], ["d1"], [None])
        assert await client.hget(run_key("run-4"), "dest|email|unknown") == b"0"
    finally:
        await client.aclose()


async def test_resolving_a_finished_runs_unknowns_reconsiders_it_and_a_failed_run_stays_failed(url):
    runs = Runs(redis.Redis.from_url(url), ttl_secs=60)
    client = redis.asyncio.Redis.from_url(url)
    try:
        for run_id in ("r5", "r6"):
            runs.create(run_id, "job", "inference")
            ledger = Ledger(client, run_id, "job", ttl_secs=60, sync_ttl_secs=60)
            await ledger.settle("email", [("u1", SENT), ("u2", UNKNOWN)], [("u1", "d1")], [("u2", f"d2:{run_id}")])
        runs.finish("r5")
        runs.fail("r6", "abandoned: no heartbeat")
        assert runs.get("r5")["state"] == "partial"
        for run_id in ("r5", "r6"):
            ledger = Ledger(client, run_id, "job", ttl_secs=60, sync_ttl_secs=60)
            await ledger.resolve("email", await ledger.in_doubt("email"), arrived=True)
        assert runs.reconsider("r5") is RunState.SUCCEEDED and runs.reconsider("r6") is RunState.FAILED
    finally:
        await client.aclose()


async def test_this_runs_sent_and_unchanged_live_with_the_last_sync_and_count_once(url):
    client = redis.asyncio.Redis.from_url(url)
    ledger = Ledger(client, "run-7", "job", ttl_secs=60, sync_ttl_secs=120)
    try:
        await client.hset(sync_key("job", "braze"), mapping={"u2": "d2:sent:run-6"})  # an earlier run's
        for _ in range(2):  # a task that runs twice
            await ledger.settle("braze", [("u1", SENT), ("u2", UNCHANGED)], [("u1", "d1")])
        assert not await client.exists(ledger_key("run-7", "braze"))  # nothing left for the run's ledger hash
        counters = await run_counters(client, "run-7")
        assert counters == {"dest|braze|sent": 1, "dest|braze|unchanged": 1}
        assert (await ledger.lookup(["braze"], ["u1", "u2"]))["braze"] == ([SENT, UNCHANGED], ["d1", "d2"], [None] * 2)
        later = Ledger(client, "run-8", "job", ttl_secs=60, sync_ttl_secs=120)
        assert (await later.lookup(["braze"], ["u1", "u2"]))["braze"] == ([None, None], ["d1", "d2"], [None] * 2)
        await ledger.settle("braze", [("u1", failed("http_400"))])  # a state of the run's ledger hash wins
        assert (await ledger.lookup(["braze"], ["u1"]))["braze"] == (["failed:http_400"], ["d1"], [None])
    finally:
        await client.aclose()


async def test_a_ledger_and_last_sync_digests_written_before_the_combined_layout_read_as_they_were(url):
    client = redis.asyncio.Redis.from_url(url)
    ledger = Ledger(client, "run-9", "job-old", ttl_secs=60, sync_ttl_secs=120)
    try:
        # The layout before: every state in the run's ledger hash, bare digests in the job's last-sync hash.
        await client.hset(ledger_key("run-9", "braze"), mapping={"u1": SENT, "u2": SENDING})
        await client.hset(sync_key("job-old", "braze"), mapping={"u1": "d1", "u3": "d3"})
        await client.hset(run_key("run-9"), mapping={"dest|braze|sent": 1, "dest|braze|sending": 1})
        found = await ledger.lookup(["braze"], ["u1", "u2", "u3"])
        assert found["braze"] == ([SENT, SENDING, None], ["d1", None, "d3"], [None] * 3)
        await ledger.settle("braze", [("u1", SENT), ("u2", SENT), ("u3", UNCHANGED)], [("u1", "d1"), ("u2", "d2")])
        counters = await run_counters(client, "run-9")
        assert counters == {"dest|braze|sent": 2, "dest|braze|sending": 0, "dest|braze|unchanged": 1}
        found = await ledger.lookup(["braze"], ["u1", "u2", "u3"])
        assert found["braze"] == ([SENT, SENT, UNCHANGED], ["d1", "d2", "d3"], [None] * 3)
    finally:
        await client.aclose()


async def test_resolving_an_older_run_leaves_a_later_runs_send_in_doubt_as_it_was(url):
    client = redis.asyncio.Redis.from_url(url)
    runs = Runs(redis.Redis.from_url(url), ttl_secs=60)
    older = Ledger(client, "run-10", "job-10", ttl_secs=60, sync_ttl_secs=120)
    newer = Ledger(client, "run-11", "job-10", ttl_secs=60, sync_ttl_secs=120)
    try:
        for run_id in ("run-10", "run-11"):
            runs.create(run_id, "job-10", "inference")
            time.sleep(0.01)
        for outcome in (True, False):
            # The older run's send to u1 is in doubt; the newer run sent other content, in doubt too.
            await older.settle("email", [("u1", SENDING)], pending=[("u1", "d1:run-10")])
            await older.settle("email", [("u1", UNKNOWN)])
            await newer.settle("email", [("u1", SENDING)], pending=[("u1", "d2:run-11")])
            await newer.settle("email", [("u1", UNKNOWN)])
            await older.resolve("email", await older.in_doubt("email"), arrived=outcome)
            later = Ledger(client, "run-12", "job-10", ttl_secs=60, sync_ttl_secs=120)
            # Not d2 as the last sync (no one said it arrived), and the newer run's mark still there: the next
            # run neither skips d2 as unchanged nor sends it again blindly.
            assert (await later.lookup(["email"], ["u1"]))["email"] == ([None], [None], ["d2:run-11"])
            assert await newer.in_doubt("email") == {"u1": "d2:run-11"}
            await client.delete(ledger_key("run-10", "email"), ledger_key("run-11", "email"))
        # The newer run found the older run's mark for the very content it had (and recorded `unknown`): its
        # resolve is about that send.
        await older.settle("email", [("u2", SENDING)], pending=[("u2", "d3:run-10")])
        await newer.settle("email", [("u2", UNKNOWN)])
        await newer.resolve("email", await newer.in_doubt("email"), arrived=True)
        assert (await later.lookup(["email"], ["u2"]))["email"] == ([None], ["d3"], [None])
    finally:
        await client.aclose()
