"""The delivery ledger and last-sync hashes in Redis: per run, destination and recipient, what happened.

States: `sending` (recorded just before a send to a destination without an idempotency key), `sent`,
`unchanged` (same payload as the last successful sync), `unknown` (a send that may or may not have
happened: never repeated automatically), `failed:<reason>`. A rerun or a redelivered task reads the
ledger first, so nothing is sent twice (destinations.md §6, "Recommended hub pattern").
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio

from workers.keys import ledger_key, run_key, sync_key

SENDING, SENT, UNCHANGED, UNKNOWN = "sending", "sent", "unchanged", "unknown"
# Failures a rerun tries again: the runner gave up on a definite, retryable failure, or hit a bug.
RETRIED_ON_RERUN = frozenset({"failed:retries_exhausted", "failed:internal_error"})


def failed(reason: str) -> str:
    return f"failed:{reason}"


# Moves recipients to new states and keeps the run's per-state counters exact: a counter changes only
# when a state does, so a task that runs twice counts nothing twice. Optionally records sync digests.
# KEYS: ledger hash, run hash, sync hash. ARGV: destination, ledger ttl, sync ttl, n, n × (recipient,
# state), then (recipient, digest) pairs.
_SETTLE = """
local dest, n, i = ARGV[1], tonumber(ARGV[4]), 5
for _ = 1, n do
  local recipient, new = ARGV[i], ARGV[i + 1]
  local old = redis.call('HGET', KEYS[1], recipient)
  if old ~= new then
    redis.call('HSET', KEYS[1], recipient, new)
    redis.call('HINCRBY', KEYS[2], 'dest|' .. dest .. '|' .. new, 1)
    if old then redis.call('HINCRBY', KEYS[2], 'dest|' .. dest .. '|' .. old, -1) end
  end
  i = i + 2
end
if n > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if i <= #ARGV then
  redis.call('HSET', KEYS[3], unpack(ARGV, i, #ARGV))
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
"""


class Ledger:
    """One run's ledger, on an asyncio Redis client."""

    def __init__(self, client: redis.asyncio.Redis, run_id: str, job: str, *, ttl_secs: int, sync_ttl_secs: int):
        self.redis = client
        self.run_id = run_id
        self.job = job
        self.ttl_secs = ttl_secs
        self.sync_ttl_secs = sync_ttl_secs
        self._settle = client.register_script(_SETTLE)

    async def lookup(
        self, destinations: Sequence[str], recipients: Sequence[str]
    ) -> dict[str, tuple[list[bytes | None], list[bytes | None]]]:
        """Per destination: (ledger states, last-sync digests) of each recipient, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for destination in destinations:
            pipe.hmget(ledger_key(self.run_id, destination), recipients)
            pipe.hmget(sync_key(self.job, destination), recipients)
        answers = await pipe.execute()
        return {d: (answers[2 * i], answers[2 * i + 1]) for i, d in enumerate(destinations)}

    async def settle(
        self,
        destination: str,
        states: Sequence[tuple[str, str]],
        synced: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Record new states (recipient, state) and, for delivered ones, their digests as the last sync."""
        if not states and not synced:
            return
        # Lua's unpack takes a few thousand values at most: callers settle chunks of ≤ 1000 recipients.
        args: list[str | int] = [destination, self.ttl_secs, self.sync_ttl_secs, len(states)]
        for recipient, state in states:
            args += (recipient, state)
        for recipient, digest in synced:
            args += (recipient, digest)
        keys = [ledger_key(self.run_id, destination), run_key(self.run_id), sync_key(self.job, destination)]
        await self._settle(keys=keys, args=args)
