"""SQLite store under --data: control-plane resources, interactions and item/user/action records.

One `Store` belongs to one thread (the server's store thread, or a job process). WAL lets the job
processes read and bulk-write while the server keeps answering; every write commits at once, so state
survives a restart.
"""

from __future__ import annotations

import contextlib
import gc
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    arn TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    parent_arn TEXT,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS resources_by_kind ON resources (kind, parent_arn);
CREATE TABLE IF NOT EXISTS interactions (
    seq INTEGER PRIMARY KEY,
    dataset INTEGER NOT NULL,  -- the dataset's resources.seq: a short key keeps the indexes small
    user_id TEXT,
    item_id TEXT,
    session_id TEXT,
    ts REAL NOT NULL,
    event_type TEXT,
    event_value REAL,
    event_id TEXT,
    impression TEXT,
    recommendation_id TEXT,
    properties TEXT,
    source TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS interactions_by_event_id ON interactions (dataset, event_id)
    WHERE event_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS interactions_anonymous ON interactions (dataset, session_id)
    WHERE user_id IS NULL;
CREATE TABLE IF NOT EXISTS records (
    dataset_arn TEXT NOT NULL,
    record_id TEXT NOT NULL,
    properties TEXT NOT NULL,
    updated REAL NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (dataset_arn, record_id)
) WITHOUT ROWID;
-- Metric attribution aggregates per metric, event attribution source and 15-minute window (attribution.py).
CREATE TABLE IF NOT EXISTS attribution_metrics (
    metric_attribution_arn TEXT NOT NULL,
    metric_name TEXT NOT NULL,
    event_type TEXT NOT NULL,
    function TEXT NOT NULL,
    source TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    value REAL NOT NULL,
    published REAL NOT NULL DEFAULT 0,  -- the part of `value` already sent to CloudWatch
    PRIMARY KEY (metric_attribution_arn, metric_name, source, window_start)
) WITHOUT ROWID;
-- Users a data deletion job removed: models trained before `deleted_at` no longer serve their data.
CREATE TABLE IF NOT EXISTS deleted_users (
    dataset_group_arn TEXT NOT NULL,
    user_id TEXT NOT NULL,
    deleted_at REAL NOT NULL,
    job_arn TEXT NOT NULL,
    PRIMARY KEY (dataset_group_arn, user_id)
) WITHOUT ROWID;
"""

INTERACTIONS_BY_USER_INDEX = "CREATE INDEX IF NOT EXISTS interactions_by_user ON interactions (dataset, user_id)"
INTERACTION_COLUMNS = ("user_id", "item_id", "session_id", "ts", "event_type", "event_value", "event_id",
                       "impression", "recommendation_id", "properties", "source")


@dataclass
class Resource:
    """One control-plane resource: its describe document plus the columns the store queries on."""

    seq: int
    arn: str
    kind: str
    parent_arn: str | None
    status: str
    created: float
    updated: float
    doc: dict[str, Any]


def _resource(row: tuple) -> Resource:
    seq, arn, kind, parent_arn, status, created, updated, doc = row
    return Resource(seq, arn, kind, parent_arn, status, created, updated, orjson.loads(doc))


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off garbage collection while millions of short-lived row tuples pass through.

    They hold no reference cycles, and each full collection would walk every live row again
    (measured: a third of the time of reading 1M interactions).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _source_clause(source: str | None, bulk_only: bool) -> str:
    # Rows written by Put* calls have source "event"; bulk rows carry their import job's ARN.
    if source is not None:
        return "AND source = ?"
    return "AND source != 'event'" if bulk_only else ""


class Store:
    """Synchronous access to the database file; use it from one thread only."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._dataset_keys: dict[str, int] = {}
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA cache_size=-131072")  # 128 MiB: bulk imports and index builds
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.db.executescript(SCHEMA)
        self.db.execute(INTERACTIONS_BY_USER_INDEX)

    def close(self) -> None:
        self.db.close()

    # --- resources ---------------------------------------------------------------------------------

    def insert_resource(self, arn: str, kind: str, parent_arn: str | None, status: str,
                        doc: dict[str, Any], created: float | None = None) -> Resource:
        now = created if created is not None else time.time()
        cursor = self.db.execute(
            "INSERT INTO resources (arn, kind, parent_arn, status, created, updated, doc) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (arn, kind, parent_arn, status, now, now, orjson.dumps(doc)))
        return Resource(cursor.lastrowid, arn, kind, parent_arn, status, now, now, doc)

    def get_resource(self, arn: str) -> Resource | None:
        row = self.db.execute("SELECT seq, arn, kind, parent_arn, status, created, updated, doc "
                              "FROM resources WHERE arn = ?", (arn,)).fetchone()
        return _resource(row) if row else None

    def update_resource(self, arn: str, *, status: str | None = None, **changes: Any) -> Resource:
        """Set `status` and merge `changes` into the document (a None value removes that key)."""
        resource = self.get_resource(arn)
        if resource is None:
            raise KeyError(arn)
        for key, value in changes.items():
            if value is None:
                resource.doc.pop(key, None)
            else:
                resource.doc[key] = value
        resource.status = status or resource.status
        resource.updated = time.time()
        self.db.execute("UPDATE resources SET status = ?, updated = ?, doc = ? WHERE arn = ?",
                        (resource.status, resource.updated, orjson.dumps(resource.doc), arn))
        return resource

    def delete_resource(self, arn: str) -> None:
        self.db.execute("DELETE FROM resources WHERE arn = ?", (arn,))
        self._dataset_keys.pop(arn, None)

    def list_resources(self, kind: str, parent_arn: str | None = None, *, after_seq: int = 0,
                       limit: int = 1_000_000) -> list[Resource]:
        sql = ("SELECT seq, arn, kind, parent_arn, status, created, updated, doc FROM resources "
               "WHERE kind = ? AND seq > ?")
        args: list[Any] = [kind, after_seq]
        if parent_arn is not None:
            sql += " AND parent_arn = ?"
            args.append(parent_arn)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        return [_resource(row) for row in self.db.execute(sql, args)]

    def find_resource(self, kind: str, key: str, value: Any) -> Resource | None:
        row = self.db.execute(
            "SELECT seq, arn, kind, parent_arn, status, created, updated, doc FROM resources "
            "WHERE kind = ? AND json_extract(doc, ?) = ?", (kind, f"$.{key}", value)).fetchone()
        return _resource(row) if row else None

    # --- interactions ------------------------------------------------------------------------------

    def dataset_key(self, dataset_arn: str) -> int:
        """The short key interactions rows carry for their dataset: its resources.seq (-1 if unknown)."""
        key = self._dataset_keys.get(dataset_arn)
        if key is None:
            row = self.db.execute("SELECT seq FROM resources WHERE arn = ?", (dataset_arn,)).fetchone()
            if row is None:
                return -1
            key = self._dataset_keys[dataset_arn] = row[0]
        return key

    def insert_interactions(self, dataset_arn: str, rows: Iterable[tuple]) -> int:
        """Append rows ordered as INTERACTION_COLUMNS; a repeated event id is ignored (docs/reference/personalize-api.md#putevents)."""
        key = self.dataset_key(dataset_arn)
        before = self.db.total_changes
        self.db.execute("BEGIN")
        try:
            self.db.executemany(
                f"INSERT OR IGNORE INTO interactions (dataset, {', '.join(INTERACTION_COLUMNS)}) "
                f"VALUES (?, {', '.join('?' * len(INTERACTION_COLUMNS))})",
                ((key, *row) for row in rows))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return self.db.total_changes - before

    def bulk_insert_interactions(self, dataset_arn: str, batches: Iterable[Iterable[tuple]]) -> int:
        """Insert many rows (imports): the per-user index is rebuilt once at the end, not row by row.

        Keeping a B-tree on random user ids current costs ~3x the insert itself (measured: 343k rows/s
        without it, 119k with it; rebuilding takes 0.7 s per million rows).
        """
        self.db.execute("DROP INDEX IF EXISTS interactions_by_user")
        try:
            with gc_paused():
                return sum(self.insert_interactions(dataset_arn, batch) for batch in batches)
        finally:
            self.db.execute(INTERACTIONS_BY_USER_INDEX)

    def claim_anonymous_session(self, dataset_arn: str, session_id: str, user_id: str) -> int:
        """Tie earlier anonymous events of a session to the user who now appears in it (docs/reference/personalize-api.md#putevents)."""
        cursor = self.db.execute(
            "UPDATE interactions SET user_id = ? WHERE dataset = ? AND session_id = ? AND user_id IS NULL",
            (user_id, self.dataset_key(dataset_arn), session_id))
        return cursor.rowcount

    def delete_interactions(self, dataset_arn: str, *, source: str | None = None, bulk_only: bool = False) -> None:
        """Delete a dataset's interactions: all, one import job's (`source`), or all bulk-imported ones."""
        self.db.execute(f"DELETE FROM interactions WHERE dataset = ? {_source_clause(source, bulk_only)}",
                        (self.dataset_key(dataset_arn), *([source] if source else [])))

    def keep_only_bulk_source(self, dataset_arn: str, source: str) -> None:
        """After a FULL import: drop every bulk-imported row except this import's (Put* rows stay)."""
        self.db.execute("DELETE FROM interactions WHERE dataset = ? AND source NOT IN ('event', ?)",
                        (self.dataset_key(dataset_arn), source))

    def count_interactions(self, dataset_arn: str) -> int:
        return self.db.execute("SELECT count(*) FROM interactions WHERE dataset = ?",
                               (self.dataset_key(dataset_arn),)).fetchone()[0]

    def iter_interactions(self, dataset_arn: str, columns: tuple[str, ...] = INTERACTION_COLUMNS,
                          batch_rows: int = 100_000, max_seq: int | None = None) -> Iterator[list[tuple]]:
        """Yield the dataset's interactions in arrival order (up to `max_seq`), in batches of rows."""
        cursor = self.db.execute(
            # "+dataset" keeps SQLite off the per-user index: a rowid range scan is already in seq order,
            # where the index would need a sort of every row (measured: 60 s instead of seconds at 5M rows).
            f"SELECT {', '.join(columns)} FROM interactions WHERE seq <= ? AND +dataset = ? ORDER BY seq",
            (max_seq if max_seq is not None else 2**62, self.dataset_key(dataset_arn)))
        while rows := cursor.fetchmany(batch_rows):
            yield rows

    def user_interactions(self, dataset_arn: str, user_id: str, limit: int = 10_000) -> list[tuple]:
        """A user's most recent interactions as (item_id, event_type, ts, event_value), newest first."""
        return self.db.execute(
            "SELECT item_id, event_type, ts, event_value FROM interactions WHERE dataset = ? AND user_id = ? "
            "ORDER BY ts DESC, seq DESC LIMIT ?", (self.dataset_key(dataset_arn), user_id, limit)).fetchall()

    def user_items_of_type(self, dataset_arn: str, user_id: str, event_type: str, limit: int) -> list[str]:
        """The items of a user's newest `limit` events of one type, newest first (recommender exclusions)."""
        rows = self.db.execute(
            "SELECT item_id FROM interactions WHERE dataset = ? AND user_id = ? AND event_type = ? "
            "ORDER BY ts DESC, seq DESC LIMIT ?", (self.dataset_key(dataset_arn), user_id, event_type, limit))
        return [row[0] for row in rows]

    # --- items / users / actions -------------------------------------------------------------------

    def upsert_records(self, dataset_arn: str, records: Iterable[tuple[str, dict[str, Any]]], source: str) -> int:
        """Insert or replace records by id (docs/reference/personalize-api.md#putitems-and-putusers); `source` is "event" or the import job's ARN."""
        now = time.time()
        before = self.db.total_changes
        self.db.execute("BEGIN")
        try:
            self.db.executemany(
                "INSERT INTO records (dataset_arn, record_id, properties, updated, source) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (dataset_arn, record_id) DO UPDATE SET properties = excluded.properties, "
                "updated = excluded.updated, source = excluded.source",
                ((dataset_arn, record_id, orjson.dumps(properties), now, source) for record_id, properties in records))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return self.db.total_changes - before

    def delete_records(self, dataset_arn: str, *, source: str | None = None, bulk_only: bool = False) -> None:
        self.db.execute(f"DELETE FROM records WHERE dataset_arn = ? {_source_clause(source, bulk_only)}",
                        (dataset_arn, *([source] if source else [])))

    def records(self, dataset_arn: str) -> dict[str, dict[str, Any]]:
        return {record_id: orjson.loads(properties) for record_id, properties in self.db.execute(
            "SELECT record_id, properties FROM records WHERE dataset_arn = ?", (dataset_arn,))}

    def records_with_source(self, dataset_arn: str) -> list[tuple[dict[str, Any], str]]:
        """Every record with its source ("event" for Put* calls, else the import job's ARN), by id."""
        return [(orjson.loads(properties), source) for properties, source in self.db.execute(
            "SELECT properties, source FROM records WHERE dataset_arn = ? ORDER BY record_id", (dataset_arn,))]

    def record(self, dataset_arn: str, record_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT properties FROM records WHERE dataset_arn = ? AND record_id = ?",
                              (dataset_arn, record_id)).fetchone()
        return orjson.loads(row[0]) if row else None

    def count_records(self, dataset_arn: str) -> int:
        return self.db.execute("SELECT count(*) FROM records WHERE dataset_arn = ?", (dataset_arn,)).fetchone()[0]

    # --- metric attribution ------------------------------------------------------------------------

    def add_attribution_metrics(self, metric_attribution_arn: str, rows: Iterable[tuple]) -> None:
        """Add (metric name, event type, function, source, window start, value) to the running aggregates."""
        self.db.executemany(
            "INSERT INTO attribution_metrics VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT DO UPDATE SET "
            "value = value + excluded.value",
            ((metric_attribution_arn, *row) for row in rows))

    def take_unpublished_attribution_metrics(self, metric_attribution_arn: str) -> list[tuple]:
        """What grew since the last publication, marked published: (name, event type, source, window, delta)."""
        self.db.execute("BEGIN")
        try:
            rows = self.db.execute(
                "SELECT metric_name, event_type, source, window_start, value - published FROM attribution_metrics "
                "WHERE metric_attribution_arn = ? AND value != published ORDER BY window_start, metric_name, source",
                (metric_attribution_arn,)).fetchall()
            self.db.execute("UPDATE attribution_metrics SET published = value WHERE metric_attribution_arn = ?",
                            (metric_attribution_arn,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return rows

    def unpublish_attribution_metrics(self, metric_attribution_arn: str, rows: list[tuple]) -> None:
        """Undo take_unpublished_attribution_metrics for rows that could not be sent."""
        self.db.executemany(
            "UPDATE attribution_metrics SET published = published - ? WHERE metric_attribution_arn = ? "
            "AND metric_name = ? AND source = ? AND window_start = ?",
            ((delta, metric_attribution_arn, name, source, window) for name, _type, source, window, delta in rows))

    def delete_attribution_metrics(self, metric_attribution_arn: str) -> None:
        self.db.execute("DELETE FROM attribution_metrics WHERE metric_attribution_arn = ?", (metric_attribution_arn,))

    # --- data deletion -----------------------------------------------------------------------------

    def delete_users(self, dataset_group_arn: str, interaction_datasets: list[str], record_datasets: list[str],
                     user_ids: list[str], job_arn: str) -> int:
        """Remove the users' interactions and records in one transaction; returns the rows deleted."""
        now, deleted = time.time(), 0
        self.db.execute("BEGIN")
        try:
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (user_id TEXT PRIMARY KEY) WITHOUT ROWID")
            self.db.execute("DELETE FROM doomed")
            self.db.executemany("INSERT OR IGNORE INTO doomed VALUES (?)", ((user,) for user in user_ids))
            for dataset_arn in interaction_datasets:
                deleted += self.db.execute("DELETE FROM interactions WHERE dataset = ? AND user_id IN "
                                           "(SELECT user_id FROM doomed)", (self.dataset_key(dataset_arn),)).rowcount
            for dataset_arn in record_datasets:
                deleted += self.db.execute("DELETE FROM records WHERE dataset_arn = ? AND record_id IN "
                                           "(SELECT user_id FROM doomed)", (dataset_arn,)).rowcount
            self.db.execute("INSERT INTO deleted_users SELECT ?, user_id, ?, ? FROM doomed WHERE true "
                            "ON CONFLICT DO UPDATE SET deleted_at = excluded.deleted_at, job_arn = excluded.job_arn",
                            (dataset_group_arn, now, job_arn))
            self.db.execute("DELETE FROM doomed")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return deleted

    def deleted_users(self, dataset_group_arn: str, since: float) -> set[str]:
        """Users of the group deleted after `since` (e.g. after a model was trained)."""
        return {row[0] for row in self.db.execute(
            "SELECT user_id FROM deleted_users WHERE dataset_group_arn = ? AND deleted_at >= ?",
            (dataset_group_arn, since))}

    def last_interaction_seq(self) -> int:
        return self.db.execute("SELECT coalesce(max(seq), 0) FROM interactions").fetchone()[0]

    def events_after(self, dataset_arn: str, after_seq: int) -> list[tuple]:
        """PutEvents rows newer than a training cut-off, as (user or session id, item, ts, type, value)."""
        return self.db.execute(
            "SELECT coalesce(user_id, session_id), item_id, ts, event_type, event_value FROM interactions "
            "WHERE seq > ? AND +dataset = ? AND source = 'event' ORDER BY seq",
            (after_seq, self.dataset_key(dataset_arn))).fetchall()
