"""RepeatFilter: an identical message is logged once per interval, then with the count held back."""

from __future__ import annotations

import logging

from hub.telemetry import RepeatFilter


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
