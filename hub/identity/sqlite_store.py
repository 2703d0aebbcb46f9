"""SQLite identity store (the embedded default): stdlib sqlite3 on one worker thread, WAL, compare-and-set.

All statements run on a single dedicated thread so the event loop never blocks on disk and the one
connection is never shared between threads. A save is one IMMEDIATE transaction: each write is an UPDATE
guarded by the expected version (or an INSERT that does nothing if the key appeared meanwhile), so two
processes sharing the file get the same compare-and-set semantics as with Redis.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hub.errors import RetryableError
from hub.identity.store import Versioned, Write, decode_record, encode_record, storage_key

_SCHEMA = """
CREATE TABLE IF NOT EXISTS identity (
    key TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    value BLOB NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identity_expiry ON identity (expires_at);
"""
# SQLite builds before 3.32 allow 999 bound parameters per statement; stay below it.
_KEYS_PER_SELECT = 500
# Expired rows are deleted in slices so a purge never holds the write lock for long.
_PURGE_EVERY_SECS = 600.0
_PURGE_SLICE = 5000


class SqliteIdentityStore:
    """Identity records in one SQLite file; expired rows read as absent and are purged in the background."""

    def __init__(self, path: str | Path, *, ttl_secs: float, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.ttl_secs = ttl_secs
        self.clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="identity-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._next_purge = 0.0
        self.round_trips = 0

    async def load(self, keys: Sequence[str]) -> dict[str, Versioned]:
        return await self._run(self._load, list(keys))

    async def save(self, writes: Sequence[Write]) -> dict[str, Versioned]:
        if not writes:
            return {}
        return await self._run(self._save, list(writes))

    async def close(self) -> None:
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    async def _run(self, function, *args):
        self.round_trips += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        except sqlite3.OperationalError as err:  # "database is locked" past busy_timeout, disk full, ...
            raise RetryableError(f"identity store: SQLite unavailable: {err}") from err

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            connection.execute("PRAGMA busy_timeout=5000")
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

    def _save(self, writes: list[Write]) -> dict[str, Versioned]:
        db, now = self._db(), self.clock()
        expires_at = now + self.ttl_secs
        conflicts: dict[str, Versioned] = {}
        db.execute("BEGIN IMMEDIATE")
        try:
            for key, expected, record in writes:
                stored_key, value = storage_key(key), encode_record(record)
                if expected == 0:
                    cursor = db.execute(
                        "INSERT INTO identity (key, version, value, expires_at) VALUES (?, 1, ?, ?) "
                        "ON CONFLICT (key) DO NOTHING", (stored_key, value, expires_at))
                else:
                    cursor = db.execute(
                        "UPDATE identity SET version = ?, value = ?, expires_at = ? WHERE key = ? AND version = ?",
                        (expected + 1, value, expires_at, stored_key, expected))
                if cursor.rowcount == 0:
                    row = db.execute("SELECT version, value, expires_at FROM identity WHERE key = ?",
                                     (stored_key,)).fetchone()
                    conflicts[key] = (Versioned(0, None) if row is None else
                                      Versioned(row[0], None if row[2] <= now else decode_record(row[1], key)))
            if now >= self._next_purge:
                self._next_purge = now + _PURGE_EVERY_SECS
                db.execute("DELETE FROM identity WHERE key IN "
                           "(SELECT key FROM identity WHERE expires_at <= ? LIMIT ?)", (now, _PURGE_SLICE))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return conflicts

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
