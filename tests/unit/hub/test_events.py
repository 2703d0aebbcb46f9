"""Event helpers: the one timestamp normaliser and deterministic event ids."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hub.events import event_id_for, to_epoch_secs

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


def test_event_ids_are_deterministic_and_within_personalize_limits():
    assert event_id_for("m-1") == "m-1"
    long = "x" * 300
    assert event_id_for(long) == event_id_for(long) and len(event_id_for(long)) <= 256
    assert event_id_for(long) != event_id_for(long + "y")
