"""Rates for the overview: the hub's Prometheus counters sampled every few seconds, read as windows."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY

Key = tuple[str, ...]  # (metric, label value, ...)
Snapshot = dict[Key, float]

# Counters the overview reads, by the sample name prometheus_client exposes ("_total" included).
WATCHED = (
    "hub_events_in_total", "hub_events_out_total", "hub_events_rejected_total", "hub_send_retries_total",
    "hub_send_throttles_total", "hub_send_giveups_total", "hub_delivery_lag_seconds_sum",
    "hub_delivery_lag_seconds_count", "hub_consumer_lag_messages",
)


def prometheus_snapshot(names: Iterable[str] = WATCHED) -> Snapshot:
    """Current values of the watched samples, keyed by name and label values."""
    wanted = set(names)
    values: Snapshot = {}
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name in wanted:
                values[(sample.name, *sample.labels.values())] = sample.value
    return values


class Activity:
    """Keeps `horizon_secs` of snapshots `interval_secs` apart; `window` gives the increase over a span."""

    def __init__(self, snapshot: Callable[[], Snapshot], *, interval_secs: float = 5.0, horizon_secs: float = 3600,
                 clock: Callable[[], float] = time.monotonic):
        self._snapshot = snapshot
        self._clock = clock
        self.interval_secs = interval_secs
        self._samples: deque[tuple[float, Snapshot]] = deque(maxlen=int(horizon_secs / interval_secs) + 2)

    def sample(self) -> None:
        self._samples.append((self._clock(), self._snapshot()))

    def current(self) -> Snapshot:
        return self._snapshot()

    def window(self, span_secs: float) -> Snapshot:
        """How much each counter grew in the last `span_secs` (or since the oldest sample, if younger)."""
        now_values = self._snapshot()
        if not self._samples:
            return now_values
        start = self._clock() - span_secs
        base = next((values for at, values in self._samples if at >= start), self._samples[-1][1])
        return {key: value - base.get(key, 0.0) for key, value in now_values.items()}

    async def run(self) -> None:
        """Sample every `interval_secs` (the caller takes the first sample when it starts)."""
        while True:
            await asyncio.sleep(self.interval_secs)
            self.sample()
