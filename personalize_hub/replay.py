"""`hub replay`: sends dead-lettered records through the pipeline again, after their cause was fixed."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from hub.connector import Outcome
from hub.errors import RejectedError
from hub.events import Event, Rejection, SourceRef
from personalize_hub.runtime import Hub


@dataclass(frozen=True)
class ReplayFilter:
    """Which dead-letter records to replay: by reason code and by the time they were dead-lettered."""

    reasons: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        if self.reasons and record.get("reason") not in self.reasons:
            return False
        if self.since or self.until:
            when = datetime.fromisoformat(record["time"])
            if (self.since and when < self.since) or (self.until and when >= self.until):
                return False
        return True


@dataclass
class ReplaySummary:
    """What a replay did; `outcomes` counts records, `reasons` why the still-rejected ones failed."""

    read: int = 0
    selected: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        """Records that did not go through this time: rejected again (back in the dead letter) or unsettled."""
        return self.outcomes[Outcome.REJECTED.value] + self.outcomes[Outcome.RETRY.value]


def read_dead_letter(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSON Lines dead letter as it was when reading began; a torn line is skipped.

    A replay appends its own failures to the same file: stopping at the size seen at the start keeps
    it from reading those again (and looping forever).
    """
    decoder = msgspec.json.Decoder()
    with open(path, "rb") as lines:
        end, consumed = lines.seek(0, 2), 0
        lines.seek(0)
        for line in lines:
            consumed += len(line)
            if consumed > end:
                break
            if line.strip():
                try:
                    yield decoder.decode(line)
                except msgspec.DecodeError:
                    continue


async def replay(
    hub: Hub,
    records: Iterable[dict[str, Any]],
    selection: ReplayFilter,
    *,
    batch_size: int = 500,
    progress=None,
) -> ReplaySummary:
    """Re-decode each selected record's original payload with the source that received it, and emit.

    Records still failing go to the dead letter again with their new reason (the file is append-only, so
    nothing is lost if a replay is interrupted). Payloads that fanned out (an order of several products)
    are replayed whole: Personalize ignores repeated eventIds, and the mapping derives the same ones.
    """
    sources = {source.config.id: source for source in hub.sources}
    summary = ReplaySummary()
    chosen = _select(records, selection, summary)
    while batch := list(itertools.islice(chosen, batch_size)):
        summary.selected += len(batch)
        events: list[Event] = []
        owners: list[int] = []
        rejections: list[Rejection] = []
        for index, record in enumerate(batch):
            source_ref = msgspec.convert(record["source"], SourceRef)
            source = sources.get(source_ref.source_id)
            try:
                if source is None:
                    raise RejectedError("unknown_source", f"source {source_ref.source_id!r} is not in this config")
                decoded = source.decode(record.get("payload"), source_ref)
            except (RejectedError, NotImplementedError) as err:
                reason = getattr(err, "reason", "not_replayable")
                rejections.append(Rejection(source=source_ref, reason=reason, message=str(err), raw=record.get("payload")))
                summary.outcomes[Outcome.REJECTED.value] += 1
                summary.reasons[reason] += 1
                continue
            events += decoded
            owners += [index] * len(decoded)
            if not decoded:
                summary.outcomes["skipped"] += 1
        report = await hub.pipeline.emit(events, rejections)
        per_record: dict[int, Outcome] = {}
        for owner, outcome in zip(owners, report.outcomes, strict=True):
            per_record[owner] = Outcome.worst([per_record.get(owner, Outcome.DELIVERED), outcome])
        for outcome in per_record.values():
            summary.outcomes[outcome.value] += 1
        for rejection in report.rejections[len(rejections):]:
            summary.reasons[rejection.reason] += 1
        if progress is not None:
            progress(len(batch))
    return summary


def _select(records: Iterable[dict[str, Any]], selection: ReplayFilter, summary: ReplaySummary) -> Iterator[dict[str, Any]]:
    for record in records:
        summary.read += 1
        if selection.matches(record):
            yield record
