"""RepeatFilter: an identical message is logged once per interval, then with the count held back; observe_all."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Histogram

from hub.telemetry import RepeatFilter, observe_all


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def record(message: str, *args, level: int = logging.ERROR, name: str = "hub.x") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


def test_a_repeated_error_passes_once_per_interval_then_says_how_many_were_held():
    clock = Clock()
    repeats = RepeatFilter(interval_secs=60, clock=clock)
    passed = []
    for attempt in range(1000):  # a retrying SDK: same failure, different attempt numbers and delays
        clock.now = attempt * 0.05
        line = record("destination %s: no credentials; retry %d in %.2fs", "events", attempt, attempt / 7)
        if repeats.filter(line):
            passed.append(line.getMessage())
    clock.now = 61
    later = record("destination %s: no credentials; retry %d in %.2fs", "events", 1001, 0.3)
    assert repeats.filter(later)
    assert passed == ["destination events: no credentials; retry 0 in 0.00s"]
    assert later.getMessage() == "destination events: no credentials; retry 1001 in 0.30s [repeated 999 more times in 61s]"


def test_different_messages_loggers_and_levels_are_not_folded():
    repeats = RepeatFilter(interval_secs=60, clock=Clock())
    assert repeats.filter(record("engine unreachable"))
    assert repeats.filter(record("credentials missing"))
    assert repeats.filter(record("engine unreachable", name="hub.other"))
    assert repeats.filter(record("engine unreachable", level=logging.WARNING))
    assert not repeats.filter(record("engine unreachable"))


def test_observe_all_records_what_one_observe_call_per_amount_would():
    buckets = (0.01, 0.1, 1, 10)
    one, all_ = (Histogram(name, "lag", ["destination"], buckets=buckets, registry=CollectorRegistry())
                 for name in ("one", "all"))
    amounts = [0.0, 0.0, 0.01, 0.5, 0.5, 1.0, 10.5, 3.25, 0.099]
    for amount in amounts:
        one.labels("d").observe(amount)
    observe_all(all_.labels("d"), amounts)
    observe_all(all_.labels("d"), [])
    assert samples(one, "one") == samples(all_, "all")


def samples(histogram: Histogram, name: str) -> list[tuple]:
    return [(s.name.removeprefix(name), s.labels, s.value) for s in histogram.collect()[0].samples
            if not s.name.endswith("_created")]
