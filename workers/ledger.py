"""The delivery ledger and last-sync hashes in Redis: per run, destination and recipient, what happened.

States: `sending` (recorded just before a send to a destination without an idempotency key), `sent`,
`unchanged` (same payload as the last successful sync), `unknown` (a send that may or may not have
happened: never repeated automatically), `failed:<reason>`. A rerun or a redelivered task reads the
ledger first, so nothing is sent twice (docs/reference/idempotency.md#per-destination, #delivery-ledger).

A send begun also leaves a per-job *pending mark* (digest and run id) that only a settled outcome
clears: a later run of the job (a new run id, so a new ledger) finds it and does not send the same
content again blindly; it asks the destination, or records `unknown` for `hub jobs resolve` to decide.

Where a state is kept: `sent` with its digest and `unchanged` (what nearly every recipient ends in) in the
job's last-sync hash, as "<digest>:<state>:<run id>" in the one field per recipient that the lookup reads
anyway; the run's ledger hash keeps the rest (`sending`, `unknown`, failures, `sent` without a digest), and
a state found there wins. Before, every recipient had a field in the run's ledger as well: five field
accesses per user in two hashes of a million fields, the larger half of Redis's time in a large export
(bench/braze_export.py). What the layout before left behind reads as it was: a last-sync value without a
run ("<digest>") is an earlier run's, and a run begun before keeps its states in its ledger hash, which wins.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import redis.asyncio

from workers.keys import index_key, ledger_key, pending_key, run_key, sync_key

SENDING, SENT, UNCHANGED, UNKNOWN = "sending", "sent", "unchanged", "unknown"
RESOLVED_UNSENT = "failed:resolved_unsent"  # an operator said an unknown send never arrived
# Failures a rerun tries again: the runner gave up on a definite, retryable failure, or hit a bug.
RETRIED_ON_RERUN = frozenset({"failed:retries_exhausted", "failed:internal_error", RESOLVED_UNSENT})


def failed(reason: str) -> str:
    return f"failed:{reason}"


# The digest in a last-sync value and this run's state in it (false: an earlier run's, or a bare digest).
# The state is compared in place, not cut out: the lookup and the settle read a million of these.
_READ_SYNC = """
local function read_sync(value, sent_mark, unchanged_mark)
  local colon = string.find(value, ':', 1, true)
  if not colon then return value, false end
  local tail = #value - colon + 1
  local state = false
  if tail == #sent_mark and string.find(value, sent_mark, colon, true) then state = 'sent'
  elseif tail == #unchanged_mark and string.find(value, unchanged_mark, colon, true) then state = 'unchanged' end
  return string.sub(value, 1, colon - 1), state
end
"""
# Moves recipients to new states and keeps the run's per-state counters exact: a counter changes only
# when a state does, so a task that runs twice counts nothing twice. Optionally records sync digests.
# Lists travel as one JSON argument each (cjson is built into Redis's Lua): packing thousands of
# separate arguments costs the client more than the whole script costs the server.
# A state other than `sending` or `unknown` is an outcome: it clears the recipient's pending mark.
# KEYS: ledger hash, run hash, sync hash, pending hash. ARGV: destination, ledger ttl, sync ttl,
# JSON [recipient, …] of the new states, the one state of them all (or "" when they differ), JSON [state, …]
# (when they differ), JSON [recipient, digest, …] delivered in this run, JSON [recipient, pending mark, …], run id.
# One state for a whole list is the common case (a chunk's `sent`): nothing decoded or indexed per recipient for it.
_SETTLE = _READ_SYNC + """
local dest, same = ARGV[1], ARGV[5]
local recipients, synced, pending = cjson.decode(ARGV[4]), cjson.decode(ARGV[7]), cjson.decode(ARGV[8])
local sent_mark, unchanged_mark = ':sent:' .. ARGV[9], ':unchanged:' .. ARGV[9]
local delivered = {}
for j = 1, #synced, 2 do delivered[synced[j]] = synced[j + 1] end
if #recipients > 0 then
  -- One HMGET per hash, one HSET, one HINCRBY per state and one HDEL for the whole list, not calls per
  -- recipient: an export settles a million recipients through here.
  local states = same == '' and cjson.decode(ARGV[6]) or nil
  local old = redis.call('HMGET', KEYS[1], unpack(recipients))
  local last = redis.call('HMGET', KEYS[3], unpack(recipients))
  local now, counts = {}, {}
  for j = 1, #recipients do
    local recipient, new = recipients[j], same
    if states then new = states[j] end
    local was = now[recipient]
    if was == nil then
      was = old[j]
      if not was and last[j] then
        local _, this_run = read_sync(last[j], sent_mark, unchanged_mark)
        was = this_run
      end
    end
    if was ~= new then
      now[recipient] = new
      counts[new] = (counts[new] or 0) + 1
      if was then counts[was] = (counts[was] or 0) - 1 end
    end
  end
  local ledger_writes, ledger_deletes, sync_writes = {}, {}, {}
  for j = 1, #recipients do  -- each changed recipient once, at its first place (old[j], last[j] are its)
    local recipient = recipients[j]
    local new = now[recipient]
    if new then
      now[recipient] = nil
      -- `sent` goes with its digest below; `unchanged` keeps the digest the last sync holds
      local with_digest = new == 'sent' and delivered[recipient] ~= nil
      if new == 'unchanged' and last[j] then
        sync_writes[#sync_writes + 1] = recipient
        sync_writes[#sync_writes + 1] = read_sync(last[j], sent_mark, unchanged_mark) .. unchanged_mark
        with_digest = true
      end
      if not with_digest then
        ledger_writes[#ledger_writes + 1] = recipient
        ledger_writes[#ledger_writes + 1] = new
      elseif old[j] then
        ledger_deletes[#ledger_deletes + 1] = recipient
      end
    end
  end
  if #ledger_writes > 0 then redis.call('HSET', KEYS[1], unpack(ledger_writes)) end
  if #ledger_deletes > 0 then redis.call('HDEL', KEYS[1], unpack(ledger_deletes)) end
  if #sync_writes > 0 then
    redis.call('HSET', KEYS[3], unpack(sync_writes))
    redis.call('EXPIRE', KEYS[3], ARGV[3])
  end
  for state, count in pairs(counts) do
    if count ~= 0 then redis.call('HINCRBY', KEYS[2], 'dest|' .. dest .. '|' .. state, count) end
  end
  -- Destinations with an idempotency key never leave pending marks: no hash, nothing to clear.
  if redis.call('EXISTS', KEYS[4]) == 1 then
    local cleared = {}
    for j = 1, #recipients do
      local new = same
      if states then new = states[j] end
      if new ~= 'sending' and new ~= 'unknown' then cleared[#cleared + 1] = recipients[j] end
    end
    if #cleared > 0 then redis.call('HDEL', KEYS[4], unpack(cleared)) end
  end
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
-- Every digest delivered in this run, whether or not its state changed now (a resync after a crash).
if #synced > 0 then
  for j = 2, #synced, 2 do synced[j] = synced[j] .. sent_mark end
  redis.call('HSET', KEYS[3], unpack(synced))
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
if #pending > 0 then
  redis.call('HSET', KEYS[4], unpack(pending))
  redis.call('EXPIRE', KEYS[4], ARGV[3])
end
"""
# KEYS: (ledger hash, sync hash, pending hash) per destination. ARGV: JSON [recipient, …], run id. Returns JSON
# [[state or false, …], [digest or false, …], [pending mark or false, …], …] in KEYS order.
_LOOKUP = _READ_SYNC + """
local recipients = cjson.decode(ARGV[1])
local sent_mark, unchanged_mark = ':sent:' .. ARGV[2], ':unchanged:' .. ARGV[2]
local found = {}
for i = 1, #KEYS, 3 do
  local states = redis.call('HMGET', KEYS[i], unpack(recipients))
  local digests = redis.call('HMGET', KEYS[i + 1], unpack(recipients))
  for j = 1, #recipients do
    if digests[j] then
      local digest, state = read_sync(digests[j], sent_mark, unchanged_mark)
      digests[j] = digest
      if not states[j] then states[j] = state end
    end
  end
  found[#found + 1] = states
  found[#found + 1] = digests
  found[#found + 1] = redis.call('HMGET', KEYS[i + 2], unpack(recipients))
end
return cjson.encode(found)
"""
MAX_RECIPIENTS_PER_CALL = 2000  # Lua's unpack takes ~8000 values: keep every call well below


def pending_mark(digest: str, run_id: str) -> str:
    return f"{digest}:{run_id}"


def parse_pending(mark: str | None) -> tuple[str, str] | None:
    """(digest, run id) of a pending mark (digests are hex: the first colon splits)."""
    if not mark:
        return None
    digest, _, run_id = mark.partition(":")
    return digest, run_id


Known = tuple[list[str | None], list[str | None], list[str | None]]
"""Per recipient: this run's ledger state, the last-sync digest, the job's pending mark."""


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
    ) -> dict[str, Known]:
        """Per destination: (ledger states, last-sync digests, pending marks) of each recipient, in one round trip."""
        assert len(recipients) <= MAX_RECIPIENTS_PER_CALL
        if not recipients:
            return {d: ([], [], []) for d in destinations}
        keys = []
        for destination in destinations:
            keys += (ledger_key(self.run_id, destination), sync_key(self.job, destination),
                     pending_key(self.job, destination))
        found = orjson.loads(await self._lookup(keys=keys, args=[orjson.dumps(recipients), self.run_id]))
        return {d: ([v or None for v in found[3 * i]], [v or None for v in found[3 * i + 1]],
                    [v or None for v in found[3 * i + 2]]) for i, d in enumerate(destinations)}

    async def settle(
        self,
        destination: str,
        states: Sequence[tuple[str, str]],
        synced: Sequence[tuple[str, str]] = (),
        pending: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Record new states (recipient, state), the digests (recipient, digest) this run delivered as the
        last sync, and pending marks (recipient, `pending_mark`) of sends about to begin."""
        if not states and not synced and not pending:
            return
        assert max(len(states), len(synced), len(pending)) <= MAX_RECIPIENTS_PER_CALL
        keys = [ledger_key(self.run_id, destination), run_key(self.run_id), sync_key(self.job, destination),
                pending_key(self.job, destination)]
        new = {state for _, state in states}
        same = new.pop() if len(new) == 1 else ""
        args = [destination, self.ttl_secs, self.sync_ttl_secs, orjson.dumps([k for k, _ in states]), same,
                b"[]" if same else orjson.dumps([state for _, state in states]),
                *(orjson.dumps([x for pair in pairs for x in pair]) for pairs in (synced, pending)), self.run_id]
        await self._settle(keys=keys, args=args)

    async def in_doubt(self, destination: str) -> dict[str, str | None]:
        """Recipients whose send may or may not have arrived (`unknown`, or `sending` left by a dead run),
        each with its pending mark."""
        keys = [k.decode() async for k, v in self.redis.hscan_iter(ledger_key(self.run_id, destination))
                if v.decode() in (UNKNOWN, SENDING)]
        marks: list[bytes | None] = []
        for i in range(0, len(keys), MAX_RECIPIENTS_PER_CALL):
            marks += await self.redis.hmget(pending_key(self.job, destination), keys[i:i + MAX_RECIPIENTS_PER_CALL])
        return {k: m.decode() if m else None for k, m in zip(keys, marks, strict=True)}

    async def resolve(self, destination: str, in_doubt: dict[str, str | None], *, arrived: bool) -> None:
        """An operator's word on sends in doubt: `sent` (its digest becomes the last sync) or never arrived
        (`failed:resolved_unsent`: the next run sends it). A pending mark of a later run is left alone."""
        items = list(in_doubt.items())
        later = await self._later_runs({parsed[1] for mark in in_doubt.values() if (parsed := parse_pending(mark))})
        for i in range(0, len(items), MAX_RECIPIENTS_PER_CALL):
            part = items[i:i + MAX_RECIPIENTS_PER_CALL]
            # A later run's mark is that run's own send in doubt (of its content): not what arrived or not
            # here. It stays for that run's resolve (the settle clears marks: it is set again).
            theirs = [(k, mark) for k, mark in part if (parsed := parse_pending(mark)) and parsed[1] in later]
            ours = [(k, parsed[0]) for k, mark in part if (parsed := parse_pending(mark)) and parsed[1] not in later]
            if arrived:
                await self.settle(destination, [(k, SENT) for k, _ in part], ours, theirs)
            else:
                await self.settle(destination, [(k, RESOLVED_UNSENT) for k, _ in part], pending=theirs)

    async def _later_runs(self, run_ids: set[str]) -> set[str]:
        """Those of `run_ids` created after this run, by the job's run index (a run gone from it is older)."""
        others = sorted(run_ids - {self.run_id})
        if not others:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for run_id in (self.run_id, *others):
                pipe.zscore(index_key(self.job), run_id)
            mine, *created = await pipe.execute()
        return {r for r, at in zip(others, created, strict=True) if mine is not None and at is not None and at > mine}
