"""Redis identity store (production): one round trip per call, compare-and-set by a Lua script.

Each record is one string `hub:identity:<key>` = `<version>|<json>` with a TTL refreshed on every write.
Concurrency: Kafka partitions keyed by person keep one person's events in one hub process, but during a
rebalance two processes can briefly both hold a key. The save script reads each stored version and writes
only if it matches, atomically (Redis runs a script without interleaving other commands), so neither
process can overwrite state it did not see; no WATCH/MULTI round trips, no locks held across the network.

A batch is one command each way, whatever its size: MGET for the loads, one script call for all the saves.
redis-py spends ~10 µs of Python per command (packing, a reply timeout each, parsing), which at one GET or
EVALSHA per key had made Redis the most expensive part of identity (bench/stages.py --redis).

The activity index is one sorted set `hub:identity:[<namespace>:]active` (userId → latest event time),
updated by `ZADD … GT` (Redis ≥ 6.2) in the save's own pipeline, its TTL refreshed there too, and
trimmed of users older than the record TTL by a ZREMRANGEBYSCORE in that pipeline once a minute.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from redis.exceptions import NoScriptError, RedisError

from hub.errors import RetryableError
from hub.identity.store import (
    ACTIVE_KEY,
    ACTIVE_USERS_PER_CHUNK,
    Versioned,
    Write,
    decode_record,
    encode_record,
    storage_key,
)
from hub.redis_connection import async_client

# KEYS the records; ARGV[1] TTL secs, ARGV[2] their new values "<version>|<json>" in KEYS order, joined by
# newlines (compact JSON never holds one: it escapes control characters in strings). Each is written only if
# the stored version is one less (0 = absent). One argument for all the values, each carrying the version it
# expects to follow: redis-py packs every argument in Python (~1 µs each on the bench machine, hiredis or not).
# Returns the refused keys only, as (index from 1, stored value or '' when absent) pairs in one flat list,
# so the caller can recompute at once; the common answer, all written, is an empty list: nothing to parse.
_COMPARE_AND_SET = """
local refused = {}
local values, from = ARGV[2], 1
for i, key in ipairs(KEYS) do
  local to = string.find(values, '\\n', from, true)
  local value = string.sub(values, from, (to or 0) - 1)
  from = (to or #values) + 1
  local current = redis.call('GET', key)
  local version = 0
  if current then version = tonumber(string.match(current, '^(%d+)|')) or 0 end
  if version + 1 ~= tonumber(string.match(value, '^(%d+)|')) then
    refused[#refused + 1] = i
    refused[#refused + 1] = current or ''
  else
    redis.call('SET', key, value, 'EX', ARGV[1])
  end
end
return refused
"""
# Trimming walks only the members it removes, but there is no need to do it on every save.
_TRIM_EVERY_SECS = 60.0


class RedisIdentityStore:
    """Identity records in Redis; `namespace` separates hubs (or tests) sharing one Redis."""

    def __init__(self, url: str, *, ttl_secs: int, namespace: str = "", client: Any = None):
        self.ttl_secs = int(ttl_secs)
        self.namespace = namespace
        # Bounded waits: a hung Redis becomes a RetryableError (the source redelivers), never a stuck batch.
        self._client = client or async_client(url, timeout_secs=5.0)
        self._script_sha: str | None = None
        self._active_key = storage_key(ACTIVE_KEY, namespace)
        self._next_trim = 0.0
        self.round_trips = 0

    async def load(self, keys: Sequence[str]) -> dict[str, Versioned]:
        if not keys:
            return {}
        values = await self._read(self._client.mget([storage_key(key, self.namespace) for key in keys]))
        return {key: _parse(value, key) for key, value in zip(keys, values, strict=True)}

    async def save(self, writes: Sequence[Write], active: Mapping[str, float] | None = None) -> dict[str, Versioned]:
        if not writes and not active:
            return {}
        sha = self._script_sha or await self._load_script()
        results = await self._run_script(sha, writes, active)
        outcome: Any = results.pop(0) if writes else []
        for result in results:  # the activity commands
            if isinstance(result, Exception):
                raise RetryableError(f"identity store: Redis refused the activity update: {result}")
        if isinstance(outcome, NoScriptError):
            # Redis restarted or SCRIPT FLUSH since we loaded it: the script ran nowhere; load it and redo it.
            outcome, = await self._run_script(await self._load_script(), writes)
        if isinstance(outcome, Exception):
            raise RetryableError(f"identity store: Redis refused a write: {outcome}")
        conflicts: dict[str, Versioned] = {}
        for index, value in zip(outcome[::2], outcome[1::2], strict=True):
            key = writes[index - 1].key
            conflicts[key] = _parse(value or None, key)
        return conflicts

    async def _run_script(self, sha: str, writes: Sequence[Write], active: Mapping[str, float] | None = None
                          ) -> list[Any]:
        """One pipeline: one script call for all the writes (if any), then (if any) the activity commands."""
        pipe = self._client.pipeline(transaction=False)
        if writes:
            namespace = self.namespace
            keys = [storage_key(key, namespace) for key, _, _ in writes]
            values = b"\n".join([b"%d|" % (expected + 1) + encode_record(record) for _, expected, record in writes])
            pipe.evalsha(sha, len(keys), *keys, self.ttl_secs, values)
        if active:
            pipe.zadd(self._active_key, dict(active), gt=True)  # GT: a late event never moves a user back
            pipe.expire(self._active_key, self.ttl_secs)  # a hub that stops writing leaves nothing behind
            now = time.time()
            if now >= self._next_trim:
                self._next_trim = now + _TRIM_EVERY_SECS
                pipe.zremrangebyscore(self._active_key, "-inf", f"({now - self.ttl_secs!r}")
        return await self._execute(pipe, raise_on_error=False)

    async def active_users(self, since_epoch_secs: float) -> AsyncIterator[str]:
        """Users by ascending time, a page per call. A page ends inside a run of equal times (events sent
        to the second often share one), so that run is read whole by its own call and the next page starts
        after it: an offset inside it could skip a member that moved up meanwhile. Times only grow, so a
        user active again while this runs is never missed, though it may be listed twice."""
        low = repr(float(since_epoch_secs))
        while True:
            page = await self._read(self._client.zrangebyscore(
                self._active_key, low, "+inf", start=0, num=ACTIVE_USERS_PER_CHUNK, withscores=True))
            if len(page) < ACTIVE_USERS_PER_CHUNK:
                for member, _ in page:
                    yield member.decode()
                return
            last = page[-1][1]
            for member, score in page:
                if score < last:
                    yield member.decode()
            for member in await self._read(self._client.zrangebyscore(self._active_key, repr(last), repr(last))):
                yield member.decode()
            low = f"({last!r}"

    async def _read(self, command: Any) -> Any:
        self.round_trips += 1
        try:
            return await command
        except RedisError as err:
            raise RetryableError(f"identity store: Redis unavailable: {err}") from err

    async def _load_script(self) -> str:
        try:
            self._script_sha = await self._client.script_load(_COMPARE_AND_SET)
        except RedisError as err:
            raise RetryableError(f"identity store: Redis unavailable: {err}") from err
        return self._script_sha

    async def _execute(self, pipe: Any, raise_on_error: bool = True) -> list[Any]:
        self.round_trips += 1
        try:
            return await pipe.execute(raise_on_error=raise_on_error)
        except RedisError as err:
            raise RetryableError(f"identity store: Redis unavailable: {err}") from err

    async def close(self) -> None:
        await self._client.aclose()


def _parse(value: bytes | None, key: str) -> Versioned:
    if not value:
        return Versioned(0, None)
    version, separator, data = value.partition(b"|")
    if not separator or not version.isdigit():
        return Versioned(0, None)
    return Versioned(int(version), decode_record(data, key))
