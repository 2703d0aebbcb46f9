"""Logging set-up and the Prometheus metrics every part of the hub reports to (names in one place)."""

from __future__ import annotations

import logging
import os
import re
import time
from bisect import bisect_left

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("hub_events_in_total", "Events received, per source.", ["source"])
EVENTS_OUT = Counter("hub_events_out_total", "Events delivered, per destination.", ["destination"])
EVENTS_REJECTED = Counter("hub_events_rejected_total", "Events dead-lettered, per reason.", ["reason"])
EVENTS_SKIPPED = Counter("hub_events_skipped_total", "Events deliberately not sent, per reason.", ["reason"])
SEND_RETRIES = Counter("hub_send_retries_total", "Batches sent again after a retryable error.", ["destination"])
SEND_THROTTLES = Counter("hub_send_throttles_total", "Throttling answers, per destination.", ["destination"])
SEND_GIVEUPS = Counter(
    "hub_send_giveups_total", "Events left unsettled (RETRY) after the retry budget ran out.", ["destination"]
)
BATCH_FILL = Histogram(
    "hub_batch_fill_ratio", "Events per request as a share of the batch limit.", ["destination"],
    buckets=(0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0),
)
DELIVERY_LAG = Histogram(
    "hub_delivery_lag_seconds", "Source timestamp to delivered, per destination.", ["destination"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)


def observe_all(histogram: Histogram, amounts: list[float]) -> None:
    """One observation of each amount, as as many `observe` calls would record them, with one lock per bucket
    touched: a delivered PutEvents batch's lags differ event by event, and a lock per event cost more than the
    rest of settling it. Uses prometheus_client's Histogram internals (pinned < 1)."""
    histogram._raise_if_not_observable()
    bounds = histogram._upper_bounds
    per_bucket: dict[int, int] = {}
    for amount in amounts:
        bucket = bisect_left(bounds, amount)  # the first bound >= amount
        per_bucket[bucket] = per_bucket.get(bucket, 0) + 1
    histogram._sum.inc(sum(amounts))
    for bucket, count in per_bucket.items():
        histogram._buckets[bucket].inc(count)


CONSUMER_LAG = Gauge("hub_consumer_lag_messages", "Messages behind the high watermark.", ["source", "partition"])


REPEAT_INTERVAL_SECS = 60.0
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


class RepeatFilter(logging.Filter):
    """Lets a message through once per interval; the next one after it says how many were held back.

    A failing dependency fails every request and every retry alike: one line per occurrence buried
    the cause under 21,334 lines in 12 minutes (issue 14). Messages that differ only in their numbers
    (attempt counts, delays, offsets) count as the same message.
    """

    MAX_KEYS = 4096  # bounded memory even if every message is new

    def __init__(self, interval_secs: float = REPEAT_INTERVAL_SECS, clock=time.monotonic):
        super().__init__()
        self.interval_secs = interval_secs
        self._clock = clock
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # key → [window start, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        key = (record.name, record.levelno, _NUMBERS.sub("#", message))
        now = self._clock()
        window = self._seen.get(key)
        if window is not None and now - window[0] < self.interval_secs:
            window[1] += 1
            return False
        if window is not None and window[1]:
            record.msg, record.args = f"{message} [repeated {int(window[1])} more times in {now - window[0]:.0f}s]", None
        if len(self._seen) >= self.MAX_KEYS:
            self._seen = {k: w for k, w in self._seen.items() if now - w[0] < self.interval_secs}
        self._seen[key] = [now, 0]
        return True


def setup_logging(level: str | None = None) -> None:
    """One line per record on stderr, repeats folded (RepeatFilter); level from the argument or HUB_LOG_LEVEL."""
    logging.basicConfig(
        level=(level or os.environ.get("HUB_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    fold_repeats(logging.getLogger())


def fold_repeats(logger: logging.Logger, **_: object) -> None:
    """Give each of the logger's handlers a RepeatFilter (hub processes, Celery workers and beat)."""
    for handler in logger.handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter())
