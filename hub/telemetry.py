"""Logging set-up and the Prometheus metrics every part of the hub reports to (names in one place)."""

from __future__ import annotations

import logging
import os

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
CONSUMER_LAG = Gauge("hub_consumer_lag_messages", "Messages behind the high watermark.", ["source", "partition"])


def setup_logging(level: str | None = None) -> None:
    """One line per record on stderr; the level comes from the argument or HUB_LOG_LEVEL."""
    logging.basicConfig(
        level=(level or os.environ.get("HUB_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
