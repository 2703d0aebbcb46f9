"""Identity stitching: one stable Personalize sessionId per browsing session, anonymousId → userId links.

`rules` holds the policy (pure), `store` the IdentityStore protocol (records, and the activity index that
lists users active since a time) with the memory store and the cache, `redis_store` / `sqlite_store` the
shared stores, `stage` the pipeline stage, `config` the config section.
Every stored key is made in `store.storage_key` and starts with `hub:identity:`.
"""

from hub.identity.config import IdentityConfig
from hub.identity.rules import IdentityRecord, Session, SessionRules, session_id_for
from hub.identity.stage import IdentityStage
from hub.identity.store import IdentityStore, MemoryIdentityStore, RecordCache, Versioned, Write

__all__ = [
    "IdentityConfig", "IdentityRecord", "IdentityStage", "IdentityStore", "MemoryIdentityStore", "RecordCache",
    "Session", "SessionRules", "Versioned", "Write", "session_id_for",
]
