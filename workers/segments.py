"""Batch segment runs (item affinity): items in, an audience of users per item out.

Same chain as batch inference, on CreateBatchSegmentJob / DescribeBatchSegmentJob: `segments.start` →
`.prepare` (≤ 500 {"itemId"} lines) → `.submit` → `.wait` → `exports.push`, which sends one "segment"
event per item with its `recommendedUsers` (docs/reference/personalize-api.md#batch-segment-jobs).
"""

from __future__ import annotations

from workers.tasks import run_tasks

start, prepare, submit, wait = run_tasks("segments")
