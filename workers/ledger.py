"""The delivery ledger and last-sync hashes in Redis: per run, destination and recipient, what happened.

States: `sending` (recorded just before a send to a destination without an idempotency key), `sent`,
`unchanged` (same payload as the last successful sync), `unknown` (a send that may or may not have
happened: never repeated automatically), `failed:<reason>`. A rerun or a redelivered task reads the
ledger first, so nothing is sent twice (destinations.md §6, "Recommended hub pattern").
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import redis.asyncio

from workers.keys import ledger_key, run_key, sync_key

SENDING, SENT, UNCHANGED, UNKNOWN = "sending", "sent", "unchanged", "unknown"
# Failures a rerun tries again: the runner gave up on a definite, retryable failure, or hit a bug.
RETRIED_ON_RERUN = frozenset({"failed:retries_exhausted", "failed:internal_error"})


def failed(reason: str) -> str:
    return f"failed:{reason}"


# Moves recipients to new states and keeps the run's per-state counters exact: a counter changes only
# when a state does, so a task that runs twice counts nothing twice. Optionally records sync digests.
# Lists travel as one JSON argument each (cjson is built into Redis's Lua): packing thousands of
# separate arguments costs the client more than the whole script costs the server.
# KEYS: ledger hash, run hash, sync hash. ARGV: destination, ledger ttl, sync ttl,
# JSON [recipient, state, …], JSON [recipient, digest, …].
_SETTLE = """
local dest = ARGV[1]
local states, synced = cjson.decode(ARGV[4]), cjson.decode(ARGV[5])
for i = 1, #states, 2 do
  local recipient, new = states[i], states[i + 1]
  local old = redis.call('HGET', KEYS[1], recipient)
  if old ~= new then
    redis.call('HSET', KEYS[1], recipient, new)
    redis.call('HINCRBY', KEYS[2], 'dest|' .. dest .. '|' .. new, 1)
    if old then redis.call('HINCRBY', KEYS[2], 'dest|' .. dest .. '|' .. old, -1) end
  end
end
if #states > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if #synced > 0 then
  redis.call('HSET', KEYS[3], unpack(synced))
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
"""
# KEYS: (ledger hash, sync hash) per destination. ARGV: JSON [recipient, …]. Returns JSON
# [[state or false, …], [digest or false, …], …] in KEYS order.
_LOOKUP = """
local recipients = cjson.decode(ARGV[1])
local found = {}
for i = 1, #KEYS do found[i] = redis.call('HMGET', KEYS[i], unpack(recipients)) end
return cjson.encode(found)
"""
MAX_RECIPIENTS_PER_CALL = 2000  # Lua's unpack takes ~8000 values: keep every call well below


class Ledger:
    """One run's ledger, on an asyncio Redis client."""

    def __init__(self, client: redis.asyncio.Redis, run_id: str, job: str, *, ttl_secs: int, sync_ttl_secs: int):
        self.redis = client
        self.run_id = run_id
        self.job = job
        self.ttl_secs = ttl_secs
        self.sync_ttl_secs = sync_ttl_secs
        self._settle = client.register_script(_SETTLE)
        self._lookup = client.register_script(_LOOKUP)

    async def lookup(
        self, destinations: Sequence[str], recipients: Sequence[str]
    ) -> dict[str, tuple[list[str | None], list[str | None]]]:
        """Per destination: (ledger states, last-sync digests) of each recipient, in one round trip."""
        assert len(recipients) <= MAX_RECIPIENTS_PER_CALL
        if not recipients:
            return {d: ([], []) for d in destinations}
        keys = []
        for destination in destinations:
            keys += (ledger_key(self.run_id, destination), sync_key(self.job, destination))
        found = orjson.loads(await self._lookup(keys=keys, args=[orjson.dumps(recipients)]))
        return {d: ([v or None for v in found[2 * i]], [v or None for v in found[2 * i + 1]])
                for i, d in enumerate(destinations)}

    async def settle(
        self,
        destination: str,
        states: Sequence[tuple[str, str]],
        synced: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Record new states (recipient, state) and, for delivered ones, their digests as the last sync."""
        if not states and not synced:
            return
        assert len(states) <= MAX_RECIPIENTS_PER_CALL and len(synced) <= MAX_RECIPIENTS_PER_CALL
        keys = [ledger_key(self.run_id, destination), run_key(self.run_id), sync_key(self.job, destination)]
        args = [destination, self.ttl_secs, self.sync_ttl_secs,
                orjson.dumps([x for pair in states for x in pair]), orjson.dumps([x for pair in synced for x in pair])]
        await self._settle(keys=keys, args=args)
