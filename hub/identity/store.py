"""The IdentityStore protocol (versioned compare-and-set of one record per key), keys, codec, memory store, cache.

Every store offers the same two batched calls: `load(keys)` and `save(writes, active)`, where each write
names the version it was computed from and is applied only if the stored version still matches
(compare-and-set). That is what lets two hub processes share a store without locks: a write computed from
stale state is refused and handed back with the current record, and the stage recomputes just that key.

The same save also keeps the activity index: each user's latest event time (never moved back), which
`active_users(since)` streams for batch jobs ("users active in the last N days", personalize_hub/jobs.py). It rides on
the save the stage makes anyway, so it costs no round trip of its own, and it is trimmed to the record TTL.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol

import msgspec

from hub.identity.rules import IdentityRecord

log = logging.getLogger(__name__)

KEY_PREFIX = "hub:identity:"
# The activity index's key (Redis: a sorted set userId → epoch secs). Identity keys are `a:…` or `u:…`,
# so this name can never be one of them.
ACTIVE_KEY = "active"
# Users per chunk when the activity index is listed: one reply or query each, never the whole index.
ACTIVE_USERS_PER_CHUNK = 1000
# Identity keys come from client-chosen ids; beyond this length they are hashed so a key stays small.
_MAX_RAW_KEY_CHARS = 200

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(IdentityRecord)


class Versioned(NamedTuple):
    """A record as stored: `version` 0 means absent; `record` None means absent or expired."""

    version: int
    record: IdentityRecord | None


class Write(NamedTuple):
    """Store `record` under `key` if the stored version is still `expected` (then it becomes expected + 1)."""

    key: str
    expected: int
    record: IdentityRecord


class IdentityStore(Protocol):
    """Where identity records live: Redis (production), SQLite (embedded default), memory (tests)."""

    async def load(self, keys: Sequence[str]) -> dict[str, Versioned]:
        """Every key's current record, in one round trip; absent keys map to Versioned(0, None)."""
        ...

    async def save(self, writes: Sequence[Write], active: Mapping[str, float] | None = None) -> dict[str, Versioned]:
        """Apply each write atomically if its version matches; return the current record of each that did not.

        In the same round trip, record each user in `active` as seen at that epoch time, unless the index
        holds a later one already (a write refused above does not undo it: the user was seen either way).
        """
        ...

    def active_users(self, since_epoch_secs: float) -> AsyncIterator[str]:
        """Every user seen at or after `since_epoch_secs`, streamed in chunks (the index may hold millions)."""
        ...

    async def close(self) -> None: ...


def identity_key(kind: str, identifier: str) -> str:
    """The logical key of an identity: `a:<anonymousId>` or `u:<userId>` (hashed when very long)."""
    if len(identifier) > _MAX_RAW_KEY_CHARS:
        identifier = "#" + hashlib.sha256(identifier.encode()).hexdigest()
    return f"{kind}:{identifier}"


def storage_key(key: str, namespace: str = "") -> str:
    """The one place stored key names are made: `hub:identity:[<namespace>:]<key>`."""
    return f"{KEY_PREFIX}{namespace}:{key}" if namespace else f"{KEY_PREFIX}{key}"


def encode_record(record: IdentityRecord) -> bytes:
    return _encoder.encode(record)


def decode_record(data: bytes | str | None, key: str) -> IdentityRecord | None:
    """A stored record, or None when absent or unreadable (logged: the key then starts afresh)."""
    if data is None:
        return None
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as err:
        log.warning("identity record %s is unreadable (%s); treating it as new", key, err)
        return None


class MemoryIdentityStore:
    """In-process store for unit tests and single-process experiments; expiry by the given clock."""

    def __init__(self, ttl_secs: float = 30 * 86400, *, clock: Callable[[], float] = time.monotonic):
        self.ttl_secs = ttl_secs
        self.clock = clock
        # (version, record, expires at): records are frozen structs, so the object itself is kept, not its
        # encoding (a row may still hold bytes, decoded when read, as a test plants an unreadable one).
        self._rows: dict[str, tuple[int, IdentityRecord | bytes, float]] = {}
        self._purge_at = 10_000
        self._active: dict[str, float] = {}  # userId → latest event time (epoch secs)
        self.round_trips = 0  # load/save calls, so tests can check batching

    async def load(self, keys: Sequence[str]) -> dict[str, Versioned]:
        self.round_trips += 1
        return {key: self._current(key) for key in keys}

    async def save(self, writes: Sequence[Write], active: Mapping[str, float] | None = None) -> dict[str, Versioned]:
        self.round_trips += 1
        if active:
            known, never = self._active, float("-inf")
            for user, at in active.items():
                if at > known.get(user, never):
                    known[user] = at
        conflicts: dict[str, Versioned] = {}
        now = self.clock()
        expires_at = now + self.ttl_secs
        rows = self._rows
        for key, expected, record in writes:
            row = rows.get(key)
            if (row[0] if row is not None else 0) != expected:
                conflicts[key] = self._current(key)
            else:
                rows[key] = (expected + 1, record, expires_at)
        if len(self._rows) > self._purge_at:  # drop expired rows now and then, so memory stays bounded
            self._rows = {k: row for k, row in self._rows.items() if row[2] > now}
            self._purge_at = max(2 * len(self._rows), 10_000)
            # Activity is event time (epoch), not the expiry clock: trimmed against the wall clock.
            oldest = time.time() - self.ttl_secs
            self._active = {user: at for user, at in self._active.items() if at >= oldest}
        return conflicts

    async def active_users(self, since_epoch_secs: float) -> AsyncIterator[str]:
        # A snapshot (saves may run while the caller awaits); the index is in this process's memory anyway.
        for user in [user for user, at in self._active.items() if at >= since_epoch_secs]:
            yield user

    def _current(self, key: str) -> Versioned:
        row = self._rows.get(key)
        if row is None:
            return Versioned(0, None)
        version, data, expires_at = row
        if expires_at <= self.clock():
            return Versioned(version, None)
        return Versioned(version, data if isinstance(data, IdentityRecord) else decode_record(data, key))

    async def close(self) -> None:
        self._rows.clear()
        self._active.clear()


class RecordCache:
    """A bounded LRU of versioned records in front of a shared store.

    Safe to cache because nothing read from it is trusted on its own: every change is saved with
    compare-and-set against the cached version, so a stale entry (another process wrote since) costs
    one refused write and a recompute, never a lost update. Events that change nothing (late events)
    are stitched from the cached record without a write; at worst they join the session the record
    showed a moment ago, which the version check cannot make worse than a late arrival already is.
    """

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Versioned] = OrderedDict()

    def get(self, key: str) -> Versioned | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def get_many(self, keys: Iterable[str], found: dict[str, Versioned]) -> list[str]:
        """`get` for a batch's keys: each cached one into `found`; returns those not cached, in order."""
        entries, missing = self._entries, []
        for key in keys:
            entry = entries.get(key)
            if entry is None:
                missing.append(key)
            else:
                entries.move_to_end(key)
                found[key] = entry
        return missing

    def put(self, key: str, entry: Versioned, *, from_store: bool = False) -> None:
        """Remember `entry`: what the store just returned (`from_store`) always, a record this process
        saved only if no newer version is cached (concurrent saves can finish out of order)."""
        if self.max_entries <= 0:
            return
        known = self._entries.get(key)
        if not from_store and known is not None and known.version > entry.version:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def put_saved(self, writes: Sequence[Write], refused: Mapping[str, Versioned]) -> None:
        """`put` of what each write not `refused` stored: its record at version `expected + 1` (one call a batch)."""
        if self.max_entries <= 0:
            return
        entries, versioned = self._entries, tuple.__new__  # tuple.__new__: a NamedTuple's own __new__ is ~3x slower
        for key, expected, record in writes:
            if key in refused:
                continue
            known = entries.get(key)
            if known is not None and known.version > expected + 1:
                continue
            # Not moved to the end: `get_many` did that for the batch's keys a moment ago.
            entries[key] = versioned(Versioned, (expected + 1, record))
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
