"""SQLite identity store (the embedded default): stdlib sqlite3 on one worker thread, WAL, compare-and-set.

All statements run on a single dedicated thread (hub.worker_thread) so the event loop never blocks on disk
and the one connection is never shared between threads; a load or a save is one call there per batch. A save
is one IMMEDIATE transaction: each write is an UPDATE guarded by the expected version (or an INSERT that does
nothing if the key appeared meanwhile), so two processes sharing the file get the same compare-and-set
semantics as with Redis; the statements run batched (executemany), and rows are re-read only when the change
count shows a write was refused. The stage saves only records that changed, and each save is committed before
it returns, so no event is acknowledged before the record that stitched it is in the WAL.
The activity index is a table `identity_active` (userId → latest event time) upserted in that same
transaction and listed in userId order, a page per query.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path

from hub.errors import RetryableError
from hub.identity.store import ACTIVE_USERS_PER_CHUNK, Versioned, Write, decode_record, encode_record, storage_key
from hub.worker_thread import WorkerThread

# A rowid table with no index on expires_at: every save rewrites expires_at, and an index on it would
# double the pages each save dirties (measured ~35% slower); expired rows are swept by rowid range instead.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS identity (
    key TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    value BLOB NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_active (
    user_id TEXT PRIMARY KEY,
    last_seen REAL NOT NULL
) WITHOUT ROWID;
"""
# WITHOUT ROWID: the userId B-tree is the table, so an upsert touches one tree, not a table and its
# index. No index on last_seen either (it would double what each save writes): listing scans by userId,
# which a weekly job can afford, and the sweep walks userId ranges.
_UPSERT_ACTIVE = ("INSERT INTO identity_active (user_id, last_seen) VALUES (?, ?) ON CONFLICT (user_id) "
                  "DO UPDATE SET last_seen = excluded.last_seen WHERE excluded.last_seen > last_seen")
_PAGE_BYTES = 1024
_WAL_BYTES_PER_CHECKPOINT = 40 * 1024 * 1024
# SQLite builds before 3.32 allow 999 bound parameters per statement; stay below it.
_KEYS_PER_SELECT = 500
# Each sweep step deletes the expired rows among the next few thousand rowids (~1 ms), at most once a
# second, so the write lock is never held long and the whole table is swept every few minutes.
_SWEEP_EVERY_SECS = 1.0
_SWEEP_ROWS = 5000


class SqliteIdentityStore:
    """Identity records in one SQLite file; expired rows read as absent and are purged in the background."""

    def __init__(self, path: str | Path, *, ttl_secs: float, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.ttl_secs = ttl_secs
        self.clock = clock
        self._thread = WorkerThread("identity-sqlite")  # the connection's only thread
        self._connection: sqlite3.Connection | None = None
        self._next_sweep = 0.0
        self._sweep_from = 0  # rowid the next sweep step starts after
        self._sweep_active_from = ""  # userId the next activity sweep step starts after
        self.round_trips = 0

    async def load(self, keys: Sequence[str]) -> dict[str, Versioned]:
        return await self._run(self._load, list(keys))

    async def save(self, writes: Sequence[Write], active: Mapping[str, float] | None = None) -> dict[str, Versioned]:
        if not writes and not active:
            return {}
        return await self._run(self._save, list(writes), list((active or {}).items()))

    async def active_users(self, since_epoch_secs: float) -> AsyncIterator[str]:
        # Keyset pages by userId: no cursor or read transaction stays open between pages, and a user whose
        # time moves meanwhile keeps its place, so each is listed once.
        after = ""
        while page := await self._run(self._active_page, after, since_epoch_secs):
            for user in page:
                yield user
            after = page[-1]

    async def close(self) -> None:
        await self._run(self._close)
        self._thread.stop()

    async def _run(self, function, *args):
        self.round_trips += 1
        try:
            return await self._thread.call(function, *args)
        except sqlite3.OperationalError as err:  # "database is locked" past busy_timeout, disk full, ...
            raise RetryableError(f"identity store: SQLite unavailable: {err}") from err

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # A commit writes each page it changed to the WAL, and a batch's records (random keys) sit on
            # about as many pages as it has records: 1 KiB pages write a quarter of the bytes of the default
            # 4 KiB (~0.8 µs less CPU per event, bench/stages.py; records are ~150-900 bytes, so they still fit
            # a page). SQLite takes a page size only before a file's first write: one made earlier keeps its own.
            connection.execute(f"PRAGMA page_size={_PAGE_BYTES}")
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            connection.execute("PRAGMA busy_timeout=5000")
            # A checkpoint copies every page changed since the last one back into the file (and syncs it). A
            # batch's records sit on as many pages as it has keys, so at the default (1000 pages) one ran
            # every ~10 batches; with ~40 MB of WAL between checkpoints a page rewritten by several batches is
            # copied once: the commit measured ~35 % cheaper (bench/stages.py). Counted in bytes, not pages,
            # so a file with 4 KiB pages made before them checkpoints as often as before. Durability is the
            # same (WAL + NORMAL: a commit is in the WAL when COMMIT returns); only a restart after a crash
            # replays a longer WAL. journal_size_limit cuts the file back to 64 MB after a checkpoint.
            (page_bytes,) = connection.execute("PRAGMA page_size").fetchone()
            connection.execute(f"PRAGMA wal_autocheckpoint={_WAL_BYTES_PER_CHECKPOINT // page_bytes}")
            connection.execute("PRAGMA journal_size_limit=67108864")
            connection.executescript(_SCHEMA)
            self._connection = connection
        return self._connection

    def _load(self, keys: list[str]) -> dict[str, Versioned]:
        db, now = self._db(), self.clock()
        found: dict[str, Versioned] = {}
        for start in range(0, len(keys), _KEYS_PER_SELECT):
            chunk = [storage_key(k) for k in keys[start:start + _KEYS_PER_SELECT]]
            rows = db.execute(
                f"SELECT key, version, value, expires_at FROM identity WHERE key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for stored_key, version, value, expires_at in rows:
                found[stored_key] = Versioned(version, None if expires_at <= now else decode_record(value, stored_key))
        return {key: found.get(storage_key(key), Versioned(0, None)) for key in keys}

    def _active_page(self, after: str, since: float) -> list[str]:
        rows = self._db().execute("SELECT user_id FROM identity_active WHERE user_id > ? AND last_seen >= ? "
                                  "ORDER BY user_id LIMIT ?", (after, since, ACTIVE_USERS_PER_CHUNK))
        return [user for (user,) in rows]

    def _save(self, writes: list[Write], active: list[tuple[str, float]]) -> dict[str, Versioned]:
        db, now = self._db(), self.clock()
        expires_at = now + self.ttl_secs
        encoded = [(storage_key(key), expected, encode_record(record)) for key, expected, record in writes]
        conflicts: dict[str, Versioned] = {}
        db.execute("BEGIN IMMEDIATE")
        try:
            updates = [(expected + 1, value, expires_at, stored, expected)
                       for stored, expected, value in encoded if expected]
            inserts = [(stored, value, expires_at) for stored, expected, value in encoded if not expected]
            changed = 0
            if updates:
                changed += db.executemany("UPDATE identity SET version = ?, value = ?, expires_at = ? "
                                          "WHERE key = ? AND version = ?", updates).rowcount
            if inserts:
                changed += db.executemany("INSERT INTO identity (key, version, value, expires_at) VALUES (?, 1, ?, ?) "
                                          "ON CONFLICT (key) DO NOTHING", inserts).rowcount
            if changed != len(writes):
                # Some were refused: they are the rows that do not hold what we wrote (we hold the write lock).
                for (key, _, _), (stored, expected, value) in zip(writes, encoded, strict=True):
                    row = db.execute("SELECT version, value, expires_at FROM identity WHERE key = ?",
                                     (stored,)).fetchone()
                    if row is None or row[0] != expected + 1 or row[1] != value:
                        conflicts[key] = (Versioned(0, None) if row is None else
                                          Versioned(row[0], None if row[2] <= now else decode_record(row[1], key)))
            if active:
                db.executemany(_UPSERT_ACTIVE, active)
            if now >= self._next_sweep:
                self._next_sweep = now + _SWEEP_EVERY_SECS
                self._sweep(db, now)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return conflicts

    def _sweep(self, db: sqlite3.Connection, now: float) -> None:
        """Delete expired rows in the next rowid range (and old activity in the next userId range); wrap at the end."""
        start = self._sweep_from
        db.execute("DELETE FROM identity WHERE rowid > ? AND rowid <= ? AND expires_at <= ?",
                   (start, start + _SWEEP_ROWS, now))
        (last,) = db.execute("SELECT coalesce(max(rowid), 0) FROM identity").fetchone()
        self._sweep_from = start + _SWEEP_ROWS if start + _SWEEP_ROWS < last else 0
        # Activity older than the record TTL, in the next userId range (event time against the wall clock).
        after = self._sweep_active_from
        (until,) = db.execute("SELECT max(user_id) FROM (SELECT user_id FROM identity_active WHERE user_id > ? "
                              "ORDER BY user_id LIMIT ?)", (after, _SWEEP_ROWS)).fetchone()
        if until is not None:
            db.execute("DELETE FROM identity_active WHERE user_id > ? AND user_id <= ? AND last_seen < ?",
                       (after, until, now - self.ttl_secs))
        self._sweep_active_from = until or ""

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
