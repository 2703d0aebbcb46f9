"""Batch inference runs (user recommendations, related items): users or items in, ranked items out.

Chain: `batch_inference.start` → `.prepare` (input JSON lines to S3 or file://) → `.submit`
(CreateBatchInferenceJob named after the run) → `.wait` (DescribeBatchInferenceJob, retried with a
countdown) → `exports.push` per shard (decorate, diff, deliver; docs/reference/personalize-api.md#batch-inference-jobs).
"""

from __future__ import annotations

from workers.tasks import run_tasks

start, prepare, submit, wait = run_tasks("batch_inference")
