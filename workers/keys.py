"""Every Redis key the batch side writes, in one place (prefix `hub:jobs:`)."""

from __future__ import annotations

PREFIX = "hub:jobs"


def run_key(run_id: str) -> str:
    """Hash: the run's record and its per-destination, per-state counters."""
    return f"{PREFIX}:run:{run_id}"


def slices_key(run_id: str) -> str:
    """Hash: "<shard>:<start offset>" → what that export slice read."""
    return f"{PREFIX}:run:{run_id}:slices"


def shards_key(run_id: str) -> str:
    """Set: shards whose export finished."""
    return f"{PREFIX}:run:{run_id}:shards"


def lock_key(run_id: str, shard: int) -> str:
    """String: the token of the task exporting a shard right now."""
    return f"{PREFIX}:run:{run_id}:lock:{shard}"


def index_key(job: str) -> str:
    """Sorted set: a job's run ids by creation time."""
    return f"{PREFIX}:runs:{job}"


def ledger_key(run_id: str, destination: str) -> str:
    """Hash: recipient → delivery state, for one run and destination, but for the states kept with the last
    sync (`sent` with its digest, `unchanged`: workers/ledger.py)."""
    return f"{PREFIX}:ledger:{run_id}:{destination}"


def sync_key(job: str, destination: str) -> str:
    """Hash: recipient → "<digest>:<state>:<run id>": the digest of what the destination last received
    successfully from this job, and the run that sent it or found it unchanged."""
    return f"{PREFIX}:sync:{job}:{destination}"


def pending_key(job: str, destination: str) -> str:
    """Hash: recipient → "<digest>:<run id>" of a send begun but never confirmed (cleared once it settles)."""
    return f"{PREFIX}:pending:{job}:{destination}"


def contacts_key(run_id: str) -> str:
    """Hash: userId → {"email", "attributes"} from the run's users list."""
    return f"{PREFIX}:contacts:{run_id}"


def lifecycle_key() -> str:
    """The newest lifecycle events (JSON, newest first), for the console."""
    return f"{PREFIX}:lifecycle"
