"""Event helpers: the one timestamp normaliser and deterministic event ids."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from hub.events import TimestampWindow, event_id_for, set_timestamp_window, to_epoch_secs

T = 1_704_067_200.5  # 2024-01-01T00:00:00.5Z


@pytest.mark.parametrize(
    "value",
    [T, T * 1000, str(T), "2024-01-01T00:00:00.500Z", "2024-01-01T00:00:00.500+00:00",
     "2024-01-01T01:00:00.500+01:00", datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=timezone.utc),
     datetime(2024, 1, 1, 0, 0, 0, 500000), datetime(2024, 1, 1, 2, 0, 0, 500000, tzinfo=timezone(timedelta(hours=2)))],
)
def test_every_timestamp_form_means_the_same_instant(value):
    assert to_epoch_secs(value) == pytest.approx(T)


@pytest.mark.parametrize("value", ["yesterday", "", None, True, -5, float("nan"), float("inf"), {"a": 1}])
def test_non_timestamps_raise(value):
    with pytest.raises(ValueError):
        to_epoch_secs(value)


@pytest.mark.parametrize("value", [1e30, "9999-12-31T23:59:59Z", 253402300799, "1999-12-31T23:59:59Z",
                                   time.time() + 2 * 86_400, 0, "1970-01-01T00:00:00Z"])
def test_times_outside_the_window_are_refused_with_the_window_named(value):
    with pytest.raises(ValueError, match="outside the accepted window 2000-01-01T00:00:00Z"):
        to_epoch_secs(value)


def test_the_window_is_configurable_and_its_edges_are_inside():
    assert to_epoch_secs("2000-01-01T00:00:00Z") == 946_684_800.0
    assert to_epoch_secs(time.time() + 86_000) > time.time()
    set_timestamp_window(TimestampWindow(earliest_secs=0, max_ahead_secs=0))
    try:
        assert to_epoch_secs("1990-06-01T00:00:00Z") == 644_198_400.0
        with pytest.raises(ValueError):
            to_epoch_secs(time.time() + 60)
    finally:
        set_timestamp_window(TimestampWindow())


def test_event_ids_are_deterministic_and_within_personalize_limits():
    assert event_id_for("m-1") == "m-1"
    long = "x" * 300
    assert event_id_for(long) == event_id_for(long) and len(event_id_for(long)) <= 256
    assert event_id_for(long) != event_id_for(long + "y")
