"""The readiness report of an import: counts over millions of rows with flat memory, refusals Personalize would make.

Users, items and duplicate rows need distinct counts over the whole file. A hash set of 5M row digests is
not flat, so rows go (user, item, digest) into an unindexed SQLite table on disk, appended in batches, and
SQLite's own external sort answers the GROUP BY and DISTINCT queries at the end within its page cache.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from connectors.destinations.personalize.readiness import MIN_INTERACTIONS, MIN_USERS_WITH_TWO
from connectors.destinations.personalize.schema import INTERACTIONS

BATCH_ROWS = 20_000
CACHE_KIB = 16 * 1024  # SQLite page cache and sorter memory: the tally's whole footprint, whatever the rows


@dataclass
class ImportReadiness:
    """What a file would give Personalize, and what Personalize would refuse to train on."""

    dataset_type: str
    mode: str
    rows: int = 0
    rejected: int = 0
    users: int = 0
    users_with_two: int = 0
    items: int = 0
    duplicates: int = 0
    event_types: dict[str, int] = field(default_factory=dict)
    first_secs: float | None = None
    last_secs: float | None = None

    def problems(self) -> list[str]:
        """Why Personalize would fail this import or the training after it; empty when it would not."""
        if self.dataset_type != INTERACTIONS:
            return [] if self.rows else ["no valid rows"]
        found = []
        # An interactions import job needs ≥ 1000 records (docs/reference/personalize-api.md#quotas, quotas); a FULL
        # import replaces the dataset, so training then needs 25 users with 2 interactions from this file alone
        # (docs/reference/personalize-api.md#statuses).
        if self.rows < MIN_INTERACTIONS:
            found.append(f"{self.rows} valid interactions; an import needs at least {MIN_INTERACTIONS}")
        if self.mode == "FULL" and self.users_with_two < MIN_USERS_WITH_TWO:
            found.append(f"{self.users_with_two} users with at least 2 interactions; training needs "
                         f"{MIN_USERS_WITH_TWO}")
        return found

    def lines(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the report table."""
        def when(secs: float | None) -> str:
            return "-" if secs is None else datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

        rows = [("rows", str(self.rows)), ("rejected rows", str(self.rejected)),
                ("duplicate rows", str(self.duplicates))]
        if self.dataset_type == INTERACTIONS:
            span_days = ((self.last_secs or 0) - (self.first_secs or 0)) / 86_400
            types = ", ".join(f"{t} {n}" for t, n in sorted(self.event_types.items(), key=lambda kv: -kv[1]))
            rows += [("users", str(self.users)), ("users with >= 2 interactions", str(self.users_with_two)),
                     ("items", str(self.items)), ("event types", types or "-"),
                     ("time span", f"{when(self.first_secs)} .. {when(self.last_secs)} ({span_days:.1f} days)")]
        return rows


class Tally:
    """Counts clean rows as they are written; `readiness()` runs the distinct counts at the end."""

    def __init__(self, path: Path, dataset_type: str, mode: str):
        path.unlink(missing_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._path = path
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE", f"cache_size=-{CACHE_KIB}"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute("CREATE TABLE rows (user TEXT, item TEXT, digest INTEGER)")
        self._pending: list[tuple[str | None, str | None, int]] = []
        self.readiness_so_far = ImportReadiness(dataset_type, mode)
        self._types: Counter[str] = Counter()

    def add(self, user: str | None, item: str | None, event_type: str | None, secs: float | None, digest: int) -> None:
        self._pending.append((user, item, digest))
        if event_type is not None:
            self._types[event_type] += 1
        if secs is not None:
            r = self.readiness_so_far
            if r.first_secs is None or secs < r.first_secs:
                r.first_secs = secs
            if r.last_secs is None or secs > r.last_secs:
                r.last_secs = secs
        if len(self._pending) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            with self._db:  # one transaction per batch: autocommit would lock the file once per row
                self._db.execute("BEGIN")
                self._db.executemany("INSERT INTO rows VALUES (?, ?, ?)", self._pending)
            self._pending = []

    def readiness(self, rejected: int) -> ImportReadiness:
        self.flush()
        r = self.readiness_so_far
        r.rejected = rejected
        r.event_types = dict(self._types)
        db = self._db
        r.rows, distinct = db.execute("SELECT count(*), count(DISTINCT digest) FROM rows").fetchone()
        r.duplicates = r.rows - distinct
        if r.dataset_type == INTERACTIONS:
            r.users, r.users_with_two = db.execute(
                "SELECT count(*), coalesce(sum(n >= 2), 0) FROM (SELECT count(*) AS n FROM rows GROUP BY user)"
            ).fetchone()
            (r.items,) = db.execute("SELECT count(DISTINCT item) FROM rows").fetchone()
        return r

    def close(self) -> None:
        self._db.close()
        self._path.unlink(missing_ok=True)
