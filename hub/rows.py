"""ExportRow: one decorated line of a batch job's output, what export destinations take (never an Event)."""

from __future__ import annotations

from typing import Any

import msgspec

from hub.events import SourceRef


class ExportRow(msgspec.Struct, kw_only=True):
    """A recipient's row: one user's recommendations, or one item's audience, with the run it came from.

    `shape` says which (the names and the record layouts live in connectors/formats/recommendations.py);
    `source.source_id` is the job, `source.message_id` is "<run id>:<recipient>".
    """

    shape: str
    source: SourceRef
    record: dict[str, Any]
    timestamp: float  # when the export produced it, epoch seconds UTC
    user_id: str | None = None  # the recipient of a per-user row

    @property
    def message_id(self) -> str:
        return self.source.message_id
