"""Lifecycle notifications: each stage's end or failure sent to the signed webhooks of `notifications:`, and kept
in a capped Redis list the console shows.

Best effort by design: a notification is retried with the hub's backoff, and when the receiver stays away
it is logged and dropped; a Redis that is away loses the journal entry, logged. An import or a retraining
never fails because its announcement did.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from connectors.formats.lifecycle import lifecycle_row
from hub.connector import Context
from hub.delivery.retry import RetryPolicy
from hub.errors import RetryableError
from hub.redis_connection import sync_client
from hub.rows import ExportRow
from workers.config import NotificationsConfig
from workers.keys import lifecycle_key

log = logging.getLogger(__name__)
# A notification gets half a minute: long enough for a receiver's blip, short enough not to hold a task.
RETRY = RetryPolicy(base_delay_secs=0.5, max_delay_secs=5.0, max_attempts=5, max_elapsed_secs=30.0)


def notify(config: NotificationsConfig, event: str, source: str, run_id: str, **data: Any) -> None:
    """Keep `event` in the journal and send it to every configured webhook (from synchronous code: the CLI,
    Celery tasks)."""
    row = lifecycle_row(event, source, run_id, data, time.time())
    _journal(config, row)
    if not config.webhooks or event not in config.events:
        return
    asyncio.run(_send_all(config, row))


def _journal(config: NotificationsConfig, row: ExportRow) -> None:
    if not config.redis_url or not config.journal_size:
        return
    entry = orjson.dumps({"time": row.timestamp, "event": row.record["type"], **row.record["data"]}, default=str)
    try:
        with sync_client(config.redis_url) as client, client.pipeline() as pipe:
            pipe.lpush(lifecycle_key(), entry).ltrim(lifecycle_key(), 0, config.journal_size - 1).execute()
    except Exception as err:  # noqa: BLE001 - best effort, as the webhooks
        log.warning("lifecycle event %s not kept in the journal: %s", row.message_id, err)


def recent_events(config: NotificationsConfig, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` lifecycle events of the journal, newest first (raises when Redis is away)."""
    if not config.redis_url:
        return []
    with sync_client(config.redis_url) as client:
        entries = client.lrange(lifecycle_key(), 0, limit - 1)
    return [event for event in map(_journal_entry, entries) if event is not None]


def _journal_entry(raw: bytes) -> dict[str, Any] | None:
    # The list lives in a shared Redis: an entry some other writer left there is skipped, not a failed console page.
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


async def _send_all(config: NotificationsConfig, row: ExportRow) -> None:
    from connectors.destinations.webhook import Webhook

    for webhook in config.webhooks:
        destination = Webhook(webhook, Context())
        try:
            await _send(destination, row)
        except Exception as err:  # noqa: BLE001 - best effort: the stage itself succeeded or failed already
            log.warning("lifecycle event %s not delivered to %s: %s", row.message_id, webhook.id, err)
        finally:
            await destination.close()


async def _send(destination: Any, row: ExportRow) -> None:
    started, attempt = time.monotonic(), 0
    while True:
        attempt += 1
        try:
            await destination.send([row])
            return
        except RetryableError:
            delay = RETRY.backoff_secs(attempt)
            if not RETRY.may_retry(attempt, time.monotonic() - started, delay):
                raise
            await asyncio.sleep(delay)
