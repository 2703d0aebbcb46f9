"""The identity stage: stitches userId and sessionId onto interactions and identifies, consumes aliases.

Per micro-batch it groups events by identity key, loads the records it does not have cached in one
call, applies the rules in event order, and saves every changed record in one compare-and-set call.
A refused save (another process changed the key) reloads and recomputes only that key's events.
Stored events are never re-emitted after an identify: Personalize would count them twice, and it
already links a session's earlier anonymous events once one of them carries the userId.

Each interaction sent with a userId marks that user active at its event time, in the same save. Only
interactions: identifies also come from server-side trait syncs, which would make everyone "active".
A batch that saves nothing records no activity either, so no batch gains a round trip: its events are
redeliveries or late events inside a session already touched later, whose user was recorded then (at
worst a little earlier, when a late identify bound that session to its user).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec

from hub.connector import StageResult
from hub.errors import RetryableError
from hub.events import Event, EventKind, Rejection
from hub.identity.rules import EMPTY, SessionRules
from hub.identity.store import IdentityStore, RecordCache, Versioned, Write, identity_key
from hub.ids import is_placeholder_id

log = logging.getLogger(__name__)

_STITCHED = frozenset({EventKind.INTERACTION, EventKind.IDENTIFY, EventKind.ALIAS})
# A key refused this many times in one batch is contended beyond reason: let the source redeliver.
_MAX_SAVE_ATTEMPTS = 5


class IdentityStage:
    """Identity stitching over an IdentityStore with a local record cache in front."""

    def __init__(self, store: IdentityStore, rules: SessionRules | None = None, *, cache_size: int = 100_000,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.rules = rules or SessionRules()
        self.clock = clock  # caps activity times: a device clock ahead must not keep its user "active" for long
        self.cache = RecordCache(cache_size)
        self.refused_saves = 0  # saves refused because another writer got there first (recomputed)

    async def apply(self, events: list[Event]) -> list[StageResult]:
        results: list[StageResult] = [[event] for event in events]
        by_key: dict[str, list[int]] = {}
        plans: dict[int, tuple[str | None, str | None]] = {}  # index → (explicit user, source session)
        for index, event in enumerate(events):
            if event.kind not in _STITCHED:
                continue
            user, anonymous, session = _clean(event.user_id), _clean(event.anonymous_id), _clean(event.session_id)
            if event.kind is EventKind.ALIAS:
                previous = _clean(event.previous_id)
                if previous is None or user is None:
                    results[index] = _reject(event, "missing_field", "previousId and userId: an alias needs both")
                    continue
                key = identity_key("a", previous)
            elif anonymous is not None:
                key = identity_key("a", anonymous)
            elif user is not None:
                key = identity_key("u", user)
            elif session is not None:
                results[index] = [msgspec.structs.replace(event, user_id=None, session_id=session)]
                continue
            else:
                results[index] = _reject(event, "missing_identity", "userId or anonymousId: one is required")
                continue
            by_key.setdefault(key, []).append(index)
            plans[index] = (user, session)
        if by_key:
            await self._stitch(events, by_key, plans, results)
        return results

    async def _stitch(self, events: list[Event], by_key: dict[str, list[int]],
                      plans: dict[int, tuple[str | None, str | None]], results: list[StageResult]) -> None:
        loaded: dict[str, Versioned] = {}
        missing = []
        for key in by_key:
            cached = self.cache.get(key)
            if cached is None:
                missing.append(key)
            else:
                loaded[key] = cached
        if missing:
            for key, entry in (await self.store.load(missing)).items():
                loaded[key] = entry
                self.cache.put(key, entry, from_store=True)
        pending = by_key
        now = self.clock()
        for _ in range(_MAX_SAVE_ATTEMPTS):
            writes = []
            active: dict[str, float] = {}  # userId → latest event time in this attempt
            for key, indexes in pending.items():
                version, stored = loaded[key]
                record = stored or EMPTY
                for index in indexes:
                    event = events[index]
                    user, session = plans[index]
                    if event.kind is EventKind.ALIAS:
                        record = self.rules.link(record, user, event.timestamp)  # type: ignore[arg-type]
                        results[index] = []  # consumed: the link is all an alias means here
                        continue
                    record, user_id, session_id = self.rules.apply(key, record, event, user, session)
                    results[index] = [msgspec.structs.replace(event, user_id=user_id, session_id=session_id)]
                    if user_id is not None and event.kind is EventKind.INTERACTION:
                        at = min(event.timestamp, now)
                        if at > active.get(user_id, 0.0):
                            active[user_id] = at
                if record != stored:
                    writes.append(Write(key, version, record))
            conflicts = await self.store.save(writes, active) if writes else {}
            for key, version, record in writes:
                if key not in conflicts:
                    self.cache.put(key, Versioned(version + 1, record))
            if not conflicts:
                return
            self.refused_saves += len(conflicts)
            log.debug("identity: %d key(s) changed by another writer; recomputing them", len(conflicts))
            for key, current in conflicts.items():
                self.cache.put(key, current, from_store=True)  # e.g. expired: the version restarts at 0
                loaded[key] = current
            pending = {key: by_key[key] for key in conflicts}
        raise RetryableError(f"identity: {len(pending)} key(s) kept changing under concurrent writers")

    async def close(self) -> None:
        await self.store.close()


def _clean(value: str | None) -> str | None:
    """Placeholder ids ("null", "undefined", "") are missing ids, never keys: they would merge strangers."""
    return None if value is None or is_placeholder_id(value) else value


def _reject(event: Event, reason: str, message: str) -> Rejection:
    return Rejection(source=event.source, reason=reason, message=message, raw=event.raw)
