"""RetryPolicy bounds and jitter; AdaptiveRateLimiter pacing, back-off and recovery."""

from __future__ import annotations

import asyncio
import random

import pytest

from hub.delivery.rate import AdaptiveRateLimiter
from hub.delivery.retry import RetryPolicy


def test_backoff_is_full_jitter_under_a_capped_exponential_ceiling():
    policy = RetryPolicy(base_delay_secs=0.1, max_delay_secs=2.0)
    rng = random.Random(1)
    for attempt in range(1, 12):
        ceiling = min(2.0, 0.1 * 2 ** (attempt - 1))
        delays = [policy.backoff_secs(attempt, rng) for _ in range(300)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling and min(delays) < 0.2 * ceiling  # spread over the whole window


def test_retry_budget_counts_attempts_and_elapsed_time():
    policy = RetryPolicy(max_attempts=3, max_elapsed_secs=10)
    assert policy.may_retry(1, 0) and policy.may_retry(2, 5)
    assert not policy.may_retry(3, 0)
    assert not policy.may_retry(1, 9, next_delay_secs=2)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, secs: float) -> None:
        self.slept.append(secs)
        self.now += secs


async def test_limiter_paces_to_its_rate_after_the_burst():
    t = FakeTime()
    limiter = AdaptiveRateLimiter(10, burst=1, clock=t.clock, sleep=t.sleep)
    for _ in range(21):
        await limiter.acquire()
    rate = 20 / t.now  # 20 paced acquisitions after the first
    assert 9.5 <= rate <= 10.5


async def test_limiter_halves_on_throttle_and_recovers_additively():
    t = FakeTime()
    limiter = AdaptiveRateLimiter(100, min_rate=5, increase_fraction=0.1, clock=t.clock, sleep=t.sleep)
    limiter.on_throttled()
    assert limiter.rate == 50
    for _ in range(10):
        limiter.on_throttled()
    assert limiter.rate == 5  # never below the floor
    for _ in range(3):
        limiter.on_success()
    assert limiter.rate == 35
    for _ in range(100):
        limiter.on_success()
    assert limiter.rate == 100  # never above the ceiling


async def test_throttled_limiter_actually_sends_slower():
    t = FakeTime()
    limiter = AdaptiveRateLimiter(100, burst=1, clock=t.clock, sleep=t.sleep)
    for _ in range(11):
        await limiter.acquire()
    fast = t.now
    limiter.on_throttled()
    start = t.now
    for _ in range(10):
        await limiter.acquire()
    assert (t.now - start) > 1.8 * fast


class LateTime(FakeTime):
    """A busy event loop: every sleep yields to other tasks and wakes `late_secs` after it was due."""

    def __init__(self, late_secs: float = 0.0) -> None:
        super().__init__()
        self.late_secs = late_secs
        self.awake = asyncio.Event()
        self.awake.set()

    async def sleep(self, secs: float) -> None:
        self.slept.append(secs)
        await self.awake.wait()
        self.now += secs + self.late_secs
        await asyncio.sleep(0)


async def test_queued_callers_the_tokens_cover_go_at_once_not_one_loop_iteration_each():
    t = LateTime(late_secs=0.9)
    limiter = AdaptiveRateLimiter(10, burst=10, clock=t.clock, sleep=t.sleep)
    for _ in range(10):
        await limiter.acquire()  # the burst
    granted: list[int] = []

    async def caller(number: int) -> None:
        await limiter.acquire()
        granted.append(number)

    t.awake.clear()
    callers = [asyncio.create_task(caller(n)) for n in range(10)]
    await asyncio.sleep(0)
    t.awake.set()  # wakes 0.9 s late: tokens for all ten have accrued
    for _ in range(4):
        await asyncio.sleep(0)
    # A lock handed from caller to caller would have let through one per loop iteration.
    assert granted == list(range(10))
    await asyncio.gather(*callers)


async def test_a_cancelled_caller_takes_no_token():
    t = LateTime()
    limiter = AdaptiveRateLimiter(10, burst=1, clock=t.clock, sleep=t.sleep)
    await limiter.acquire()
    first, cancelled, last = (asyncio.create_task(limiter.acquire()) for _ in range(3))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(first, last)
    assert cancelled.cancelled()
    assert t.now == pytest.approx(0.2)  # two tokens, not three


async def test_a_throttle_slows_callers_already_queued():
    t = LateTime()
    limiter = AdaptiveRateLimiter(100, burst=1, clock=t.clock, sleep=t.sleep)
    await limiter.acquire()
    queued = [asyncio.create_task(limiter.acquire()) for _ in range(10)]
    await asyncio.sleep(0)
    limiter.on_throttled()  # 50/s from now on, for those waiting too
    await asyncio.gather(*queued)
    assert t.now == pytest.approx(10 / 50)
