"""The dead letter: every rejected input with its original payload, reason code, attempts and source."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import msgspec

from hub import telemetry
from hub.connector import RecordSink
from hub.delivery.retry import RetryPolicy
from hub.errors import RetryableError
from hub.events import Event, Rejection


class DeadLetterRecord(msgspec.Struct, kw_only=True):
    """One dead-lettered input; `payload` is what the source received, `event` what it was decoded to."""

    time: str  # ISO-8601 UTC, when it was dead-lettered
    reason: str
    message: str
    attempts: int
    source: dict[str, Any]
    payload: Any = None
    event: dict[str, Any] | None = None
    destination: str | None = None

    @classmethod
    def of(
        cls,
        rejection: Rejection,
        *,
        event: Event | None = None,
        attempts: int = 0,
        destination: str | None = None,
    ) -> DeadLetterRecord:
        return cls(
            time=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            reason=rejection.reason,
            message=rejection.message,
            attempts=attempts,
            source=msgspec.to_builtins(rejection.source),
            payload=rejection.raw,
            event=_event_without_raw(event),
            destination=destination,
        )


def _event_without_raw(event: Event | None) -> dict[str, Any] | None:
    if event is None:
        return None
    data = event.to_dict()
    data.pop("raw", None)  # already stored once as `payload`
    return data


class DeadLetter:
    """Writes dead-letter records to a sink, retrying; raises RetryableError if the sink stays down.

    A rejected event counts as settled only once this returned, so a failure here must surface as
    RETRY to the source rather than dropping the event.
    """

    def __init__(self, sink: RecordSink, retry: RetryPolicy | None = None):
        self.sink = sink
        self.retry = retry or RetryPolicy(max_attempts=5, max_elapsed_secs=10)

    async def write(self, records: Sequence[DeadLetterRecord]) -> None:
        if not records:
            return
        rows = [msgspec.to_builtins(record) for record in records]
        started, attempts = time.monotonic(), 0
        while True:
            attempts += 1
            try:
                await self.sink.write_records(rows)
                break
            except Exception as err:  # any sink failure: the sink is a destination of unknown kind
                delay = self.retry.backoff_secs(attempts)
                if not self.retry.may_retry(attempts, time.monotonic() - started, delay):
                    raise RetryableError(f"dead letter unavailable: {err}") from err
                await asyncio.sleep(delay)
        for record in records:
            telemetry.EVENTS_REJECTED.labels(record.reason).inc()
