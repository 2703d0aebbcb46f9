"""The `{active_in_last_days: N}` input: the users the hub's identity store saw lately, as batch-input lines.

The identity stage keeps an activity index (hub/identity/store.py) in the store the hub config declares;
a worker opens that same store and streams it. Only stores a worker can share qualify: SQLite (the
hub's file, on this machine) and Redis. The index knows user ids only, so destinations that need an
email find none for these users and refuse them with their own reason (`missing_email`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator

import orjson

from hub.errors import HubError
from hub.identity.config import IdentityConfig, MemoryStoreConfig, SqliteStoreConfig
from hub.identity.store import ACTIVE_USERS_PER_CHUNK

DAY_SECS = 86_400


class NoActivityIndex(HubError):
    """The hub config declares no identity store whose activity a worker can list for this window."""


def unusable_because(identity: IdentityConfig, days: int) -> str | None:
    """Why this identity config cannot answer "users active in the last `days` days", or None."""
    store = identity.store
    if not identity.enabled:
        return "identity.enabled is false, so the hub records no activity"
    if isinstance(store, MemoryStoreConfig):
        return ("identity.store is memory: it lives inside the hub process, out of a worker's reach "
                "(use sqlite or redis)")
    if isinstance(store, SqliteStoreConfig) and not store.path.exists():
        return (f"identity.store sqlite file {store.path} does not exist (working directory {os.getcwd()}): "
                "workers must run where the hub's file is, or use a redis store")
    if days * DAY_SECS > identity.record_ttl_secs:
        # Activity is trimmed with the records: a longer window would silently list fewer users.
        return (f"{days} days exceed identity.record_ttl_secs ({identity.record_ttl_secs / DAY_SECS:g} days), "
                "after which activity is forgotten; raise record_ttl_secs or shorten the window")
    return None


def active_user_lines(identity: IdentityConfig, days: int, *, now: float | None = None) -> Iterator[bytes]:
    """A `{"userId": …}` line per user active in the last `days` days, read chunk by chunk, never all at once.

    The store is asynchronous and this runs in a synchronous task, so a private event loop drives it, one
    chunk per step. A Redis listing is at least once (a user active again meanwhile may come twice);
    the delivery ledger still sends to each recipient once per run.
    """
    problem = unusable_because(identity, days)
    if problem:
        raise NoActivityIndex(f"input active_in_last_days: {problem}")
    return _lines(identity, (time.time() if now is None else now) - days * DAY_SECS)


def _lines(identity: IdentityConfig, since: float) -> Iterator[bytes]:
    store = identity.build_store()
    loop = asyncio.new_event_loop()
    chunks = _chunks(store.active_users(since))
    try:
        while True:
            try:
                chunk = loop.run_until_complete(anext(chunks))
            except StopAsyncIteration:
                return
            for user in chunk:
                yield orjson.dumps({"userId": user})
    finally:
        loop.run_until_complete(chunks.aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())  # the store's own listing, if stopped midway
        loop.run_until_complete(store.close())
        loop.close()


async def _chunks(users: AsyncIterator[str]) -> AsyncIterator[list[str]]:
    chunk: list[str] = []
    async for user in users:
        chunk.append(user)
        if len(chunk) >= ACTIVE_USERS_PER_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
