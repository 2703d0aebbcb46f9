"""The one builder of Redis connections, and the `redis:` settings every Redis user of the hub shares."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from hub.secret import Secret

if TYPE_CHECKING:  # redis is imported on first connection: a hub without Redis never loads it
    import redis
    import redis.asyncio


class RedisConfig(BaseModel):
    """The `redis:` section: the one Redis URL that identity, readiness, workers and the store default to."""

    model_config = ConfigDict(extra="forbid")

    url: Secret | None = Field(
        None, description="redis:// or rediss:// URL, e.g. ${REDIS_URL}, never logged; every section that uses "
        "Redis and names no URL of its own uses this one.")


def async_client(url: str, *, timeout_secs: float | None = None, max_connections: int | None = None,
                 pool_wait_secs: float | None = None) -> redis.asyncio.Redis:
    """An asyncio client for one event loop; the caller closes it (`aclose()`).

    `timeout_secs` bounds connecting and every reply (a hung Redis becomes an error, not a stuck task);
    `max_connections` makes the pool blocking: a burst waits up to `pool_wait_secs` for a connection
    instead of opening one per request.
    """
    import redis.asyncio

    timeouts = {}
    if timeout_secs is not None:
        timeouts = {"socket_timeout": timeout_secs, "socket_connect_timeout": timeout_secs}
    if max_connections is None:
        return redis.asyncio.Redis.from_url(url, **timeouts)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=pool_wait_secs, **timeouts)
    return redis.asyncio.Redis.from_pool(pool)  # the client owns the pool and closes it


def sync_client(url: str) -> redis.Redis:
    """A pooled synchronous client (CLI commands, Celery tasks)."""
    import redis

    return redis.Redis.from_url(url)

