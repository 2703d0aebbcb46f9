"""An AIMD token-bucket rate limiter: halves its rate on throttling, creeps back up on success."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable


_ROUNDING = 1e-9  # a sleep of exactly the deficit may refill 1 - ε tokens: that is a whole token


class AdaptiveRateLimiter:
    """Token bucket whose rate adapts like TCP congestion control (additive increase, multiplicative decrease).

    The ceiling is the service quota (or a configured lower one); a throttle answer means the real
    budget is lower right now (shared quota, other writers), so the rate drops by `decrease_factor`,
    never below `min_rate`. Each success adds `increase_fraction` of the ceiling back.
    """

    def __init__(
        self,
        max_rate: float,
        *,
        min_rate: float | None = None,
        decrease_factor: float = 0.5,
        increase_fraction: float = 0.02,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        if max_rate <= 0:
            raise ValueError("max_rate must be positive")
        self.max_rate = max_rate
        self.min_rate = min_rate if min_rate is not None else max(max_rate / 100, 0.1)
        self.rate = max_rate
        self.decrease_factor = decrease_factor
        self.increase_step = max_rate * increase_fraction
        self.burst = burst if burst is not None else max(1.0, max_rate / 10)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._releaser: asyncio.Task[None] | None = None

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self) -> None:
        """Wait for one request's worth of budget; callers are served in arrival order."""
        self._refill()
        if not self._waiters and self._tokens >= 1 - _ROUNDING:
            self._tokens -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._releaser is None:
            self._releaser = asyncio.create_task(self._release_waiters())
        await waiter

    async def _release_waiters(self) -> None:
        """Hand out tokens to queued callers as they accrue, every caller a token covers at each wake-up.

        One task releases them all: a lock handed from caller to caller cost one event-loop iteration
        per request, which capped a busy hub near 850 requests/s under a 1000/s quota. Rate changes
        apply at once to everyone still queued, as the token count and rate are read at each wake-up.
        """
        try:
            while self._waiters:
                self._refill()
                if self._tokens < 1 - _ROUNDING:
                    await self._sleep((1 - self._tokens) / self.rate)
                    self._refill()
                while self._waiters and self._tokens >= 1 - _ROUNDING:
                    waiter = self._waiters.popleft()
                    if not waiter.done():  # a cancelled caller takes no token
                        self._tokens -= 1
                        waiter.set_result(None)
        finally:
            self._releaser = None

    def on_throttled(self) -> None:
        self.rate = max(self.min_rate, self.rate * self.decrease_factor)
        self._tokens = min(self._tokens, 0.0)  # the burst we had is what got us throttled

    def on_success(self) -> None:
        self.rate = min(self.max_rate, self.rate + self.increase_step)
