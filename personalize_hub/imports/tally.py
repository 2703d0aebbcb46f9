"""The readiness report of an import: counts over millions of rows with flat memory, refusals Personalize would make.

Users, items and duplicate rows need distinct counts over the whole file. A hash set of 5M row digests is
not flat, so each clean batch appends 64-bit hashes of its users, items and whole rows to PARTITIONS files
on disk, split by the hash's top bits; at the end each file (1/PARTITIONS of the rows) is counted alone with
numpy. The counts are exact unless two different values share a 64-bit hash: odds of about n² / 2⁶⁵, below
one in a million for 5M distinct values.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.destinations.personalize.readiness import MIN_INTERACTIONS, MIN_USERS_WITH_TWO
from connectors.destinations.personalize.schema import INTERACTIONS

PARTITIONS = 16  # 5M rows: ~300k hashes (2.5 MB) per file at the end
TALLY_ROWS = 50_000  # clean rows counted at once (~5 MB of interactions)
_PRIME = np.uint64(0x100000001B3)  # FNV-1a's multiplier: mixes the columns' hashes into a row digest
_TOP_BITS = np.uint64(64 - 4)  # 2**4 == PARTITIONS


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
    """Counts clean rows as they are written (a table of the clean CSV's columns at a time); `readiness()` runs
    the distinct counts at the end."""

    def __init__(self, folder: Path, dataset_type: str, mode: str):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self._folder = folder
        self._kinds = ("rows", "users", "items") if dataset_type == INTERACTIONS else ("rows",)
        self._files = {kind: [open(folder / f"{kind}.{p}", "wb") for p in range(PARTITIONS)] for kind in self._kinds}
        self._tables: list[pa.Table] = []
        self._rows = 0
        self.readiness_so_far = ImportReadiness(dataset_type, mode)
        self._types: Counter[str] = Counter()

    def add(self, table: pa.Table) -> None:
        """Clean rows, counted in runs of TALLY_ROWS: values repeat more within a longer run, and each distinct
        value of a run is hashed once."""
        self._tables.append(table)
        self._rows += table.num_rows
        if self._rows >= TALLY_ROWS:
            self._count()

    def _count(self) -> None:
        if not self._rows:
            return
        table = pa.concat_tables(self._tables).combine_chunks()
        self._tables, self._rows = [], 0
        r = self.readiness_so_far
        r.rows += table.num_rows
        digest = np.zeros(table.num_rows, dtype=np.uint64)
        hashes = {}
        seconds = None
        for name in table.column_names:
            if name == "TIMESTAMP":  # distinct on nearly every row: its number is hash enough
                seconds = pc.cast(table.column(name), pa.int64()).to_numpy()
                hashes[name] = seconds.view(np.uint64)
            else:
                hashes[name] = _hashes(table.column(name), distinct_few=name != "USER_ID")
            digest = (digest ^ hashes[name]) * _PRIME
        self._spill("rows", digest)
        if r.dataset_type != INTERACTIONS:
            return
        self._spill("users", hashes["USER_ID"])
        self._spill("items", hashes["ITEM_ID"])
        for entry in pc.value_counts(table.column("EVENT_TYPE")).to_pylist():
            self._types[entry["values"]] += entry["counts"]
        if seconds is not None:
            first, last = int(seconds.min()), int(seconds.max())
            r.first_secs = first if r.first_secs is None else min(r.first_secs, first)
            r.last_secs = last if r.last_secs is None else max(r.last_secs, last)

    def _spill(self, kind: str, hashes: np.ndarray) -> None:
        part = (hashes >> _TOP_BITS).astype(np.uint8)
        order = np.argsort(part, kind="stable")  # a radix sort on bytes
        ends = np.cumsum(np.bincount(part, minlength=PARTITIONS))
        ordered = hashes[order]
        start = 0
        for p, end in enumerate(ends):
            if end > start:
                ordered[start:end].tofile(self._files[kind][p])
            start = end

    def readiness(self, rejected: int) -> ImportReadiness:
        r = self.readiness_so_far
        r.rejected = rejected
        self._count()
        r.event_types = dict(self._types)
        self._close_files()
        distinct = 0
        for p in range(PARTITIONS):
            distinct += _runs(self._read("rows", p)).size
            if r.dataset_type == INTERACTIONS:
                users = _runs(self._read("users", p))
                r.users += users.size
                r.users_with_two += int((users >= 2).sum())
                r.items += _runs(self._read("items", p)).size
        r.duplicates = r.rows - distinct
        return r

    def _read(self, kind: str, p: int) -> np.ndarray:
        return np.fromfile(self._folder / f"{kind}.{p}", dtype=np.uint64)

    def _close_files(self) -> None:
        for files in self._files.values():
            for handle in files:
                handle.close()

    def close(self) -> None:
        self._close_files()
        shutil.rmtree(self._folder, ignore_errors=True)


def _hashes(column: pa.ChunkedArray | pa.Array, distinct_few: bool) -> np.ndarray:
    """A 64-bit hash per value: Python's own string hash; once per distinct value of the run when they are
    `distinct_few` (event types, metadata), else straight (ids: dictionary encoding costs more than it saves)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not distinct_few:
        return np.fromiter(map(hash, column.to_pylist()), dtype=np.int64, count=len(column)).view(np.uint64)
    encoded = column.dictionary_encode()
    values = np.fromiter(map(hash, encoded.dictionary.to_pylist()), dtype=np.int64,
                         count=len(encoded.dictionary)).view(np.uint64)
    return values[encoded.indices.to_numpy(zero_copy_only=False)]


def _runs(hashes: np.ndarray) -> np.ndarray:
    """How often each distinct hash occurs (sorting: numpy's hash-based unique is ~70× slower on uint64)."""
    if not hashes.size:
        return hashes
    hashes.sort()
    starts = np.flatnonzero(np.concatenate(([True], hashes[1:] != hashes[:-1])))
    return np.diff(np.append(starts, hashes.size))
