"""Lifecycle events of the Personalize workflow (import, training, gate, campaign, batch job, export) as export rows.

One row per stage's end or failure; `message_id` is "<run id>:<event>", so a stage reported twice (a task
redelivered) carries the same webhook-id and the receiver drops the repeat.
"""

from __future__ import annotations

from typing import Any

from hub.events import SourceRef
from hub.rows import ExportRow

LIFECYCLE = "lifecycle"  # ExportRow.shape of a lifecycle event
EVENTS = (
    "import.finished", "import.failed",
    "solution_version.trained", "solution_version.failed",
    "gate.passed", "gate.failed", "campaign.updated",
    "batch_job.finished", "batch_job.failed", "export.finished",
)


def lifecycle_row(event: str, source: str, run_id: str, data: dict[str, Any], timestamp: float) -> ExportRow:
    """The row for `event` of run `run_id` of `source` (a job name, or "import")."""
    if event not in EVENTS:
        raise ValueError(f"unknown lifecycle event {event!r}; one of {', '.join(EVENTS)}")
    return ExportRow(shape=LIFECYCLE, source=SourceRef(source_id=source, message_id=f"{run_id}:{event}"),
                     record={"type": event, "data": {"source": source, "run_id": run_id, **data}},
                     timestamp=timestamp)


def is_lifecycle(row: ExportRow) -> bool:
    return row.shape == LIFECYCLE
