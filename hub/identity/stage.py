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

Events carrying only a userId (what Segment's and mParticle's server-side libraries send) continue the
session of the user's latest login: a login (an event with both ids) records on the userId key which
anonymousId key it happened on and when (`IdentityRecord.device`), and later userId-only events are
stitched on that key, under its idle-timeout and logout rules, as long as it is still linked to the user
at their event time; otherwise (before the login, after a logout or another user's login) they keep a
session of the userId key. Decisions use event times only, so a redelivered batch is stitched alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec

from hub.connector import StageResult
from hub.errors import RetryableError
from hub.events import Event, EventKind, Rejection
from hub.identity.rules import EMPTY, IdentityRecord, SessionRules
from hub.identity.store import IdentityStore, RecordCache, Versioned, Write, identity_key
from hub.ids import is_placeholder_id

log = logging.getLogger(__name__)

# Members bound once: `EventKind.X` costs a metaclass attribute lookup (~70 ns on CPython 3.11) per use.
_INTERACTION, _IDENTIFY, _ALIAS = EventKind.INTERACTION, EventKind.IDENTIFY, EventKind.ALIAS
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
        # index → (explicit user, source session), for the events identity stitches (a list: indexed per event)
        plans: list[tuple[str | None, str | None] | None] = [None] * len(events)
        by_key: dict[str, list[int]] = {}  # identity key → its events' indexes, in batch order
        logins: dict[int, str] = {}  # index → the anonymousId key of an event that also carries a userId
        user_only: dict[int, str] = {}  # userId-only events (→ key) that may continue the session of the user's login
        for index, event in enumerate(events):
            kind = event.kind
            if kind is not _INTERACTION and kind is not _IDENTIFY and kind is not _ALIAS:
                continue
            user, anonymous, session = event.user_id, event.anonymous_id, event.session_id
            # Mostly None (a session id nearly always, a user id often): cleaned only when present, inline
            # (this loop runs once per event).
            if user is not None and is_placeholder_id(user):
                user = None
            if anonymous is not None and is_placeholder_id(anonymous):
                anonymous = None
            if session is not None and is_placeholder_id(session):
                session = None
            if kind is _ALIAS:
                previous = _clean(event.previous_id)
                if previous is None or user is None:
                    results[index] = _reject(event, "missing_field", "previousId and userId: an alias needs both")
                    continue
                key = identity_key("a", previous)
            elif anonymous is not None:
                key = identity_key("a", anonymous)
                if user is not None:
                    logins[index] = key
            elif user is not None:
                key = identity_key("u", user)
                if session is None:  # not events naming their own session (mParticle's session_uuid): it wins
                    user_only[index] = key
            elif session is not None:
                results[index] = [msgspec.structs.replace(event, user_id=None, session_id=session)]
                continue
            else:
                results[index] = _reject(event, "missing_identity", "userId or anonymousId: one is required")
                continue
            plans[index] = (user, session)
            group = by_key.get(key)
            if group is None:
                by_key[key] = [index]
            else:
                group.append(index)
        if not by_key:
            return results
        # One load for the batch's keys and the userId keys logins and userId-only events need.
        user_keys = {identity_key("u", plans[i][0]) for i in logins}  # type: ignore[arg-type]
        loaded = await self._load(sorted({*by_key, *user_keys}) if user_keys else sorted(by_key))
        devices, borrowed = self._follow_logins(events, plans, logins, user_only, loaded)
        for key in devices:
            by_key.setdefault(key, [])  # device changes are saved even alone
        if borrowed:
            for index in borrowed:  # re-keyed to the device of the user's login: moved to that key's events
                moved_from = by_key[identity_key("u", plans[index][0])]  # type: ignore[arg-type]
                moved_from.remove(index)
                by_key.setdefault(user_only[index], []).append(index)
            for key in [key for key, indexes in by_key.items() if not indexes and key not in devices]:
                del by_key[key]
            for key in {user_only[index] for index in borrowed}:
                # Borrowed events come from another stream (the server's): merged with the device's by event
                # time, the device's own first at equal times (a link made at an instant holds at that instant).
                by_key[key].sort(key=lambda index: (events[index].timestamp, index in borrowed, index))
        strays = await self._stitch(events, by_key, plans, results, devices, borrowed, loaded)
        if strays:  # the device was no longer the user's at their time: a session of the userId key
            fallback: dict[str, list[int]] = {}
            for index in strays:
                fallback.setdefault(identity_key("u", plans[index][0]), []).append(index)  # type: ignore[arg-type]
            await self._stitch(events, fallback, plans, results, {}, set(), {})
        return results

    @staticmethod
    def _follow_logins(
        events: list[Event], plans: list[tuple[str | None, str | None] | None],
        logins: dict[int, str], user_only: dict[int, str], loaded: dict[str, Versioned],
    ) -> tuple[dict[str, IdentityRecord], set[int]]:
        """Re-key the `user_only` events to the device of the user's latest login before them (in place).

        Returns the userId keys' records with this batch's logins added, and the indexes re-keyed.
        """
        if not user_only and not logins:
            return {}, set()
        records = {key: entry.record or EMPTY for key, entry in loaded.items() if key.startswith("u:")}
        changed: dict[str, IdentityRecord] = {}
        # Logins first, in (time, device) order, then each userId-only event by its time: the same
        # answer in any arrival order, and on redelivery.
        for index, device in sorted(logins.items(), key=lambda item: (events[item[0]].timestamp, item[1])):
            user_key = identity_key("u", plans[index][0])  # type: ignore[arg-type]
            record = records.get(user_key, EMPTY)
            updated = record.with_device(events[index].timestamp, device)
            if updated is not record:
                records[user_key] = changed[user_key] = updated
        for index in user_only:
            record = records.get(user_only[index], EMPTY)
            if (device := record.device_at(events[index].timestamp)) is not None:
                user_only[index] = device
        borrowed = {i for i, key in user_only.items() if not key.startswith("u:")}
        return changed, borrowed

    async def _load(self, keys: list[str]) -> dict[str, Versioned]:
        """Records of `keys` from the cache, the rest from the store in one call (then cached)."""
        loaded: dict[str, Versioned] = {}
        missing = self.cache.get_many(keys, loaded)
        if missing:
            for key, entry in (await self.store.load(missing)).items():
                loaded[key] = entry
                self.cache.put(key, entry, from_store=True)
        return loaded

    async def _stitch(self, events: list[Event], by_key: dict[str, list[int]],
                      plans: list[tuple[str | None, str | None] | None], results: list[StageResult],
                      devices: dict[str, IdentityRecord], borrowed: set[int],
                      loaded: dict[str, Versioned]) -> set[int]:
        """Apply the rules per key and save; returns the borrowed events the device did not take."""
        missing = [key for key in by_key if key not in loaded]
        loaded = {**loaded, **(await self._load(missing) if missing else {})}
        pending = by_key
        strays: set[int] = set()
        now = self.clock()
        apply, replace = self.rules.apply, msgspec.structs.replace
        new = tuple.__new__  # Write's own (generated) __new__ is ~3x slower, once per changed key
        for _ in range(_MAX_SAVE_ATTEMPTS):
            writes = []
            active: dict[str, float] = {}  # userId → latest event time in this attempt
            for key, indexes in pending.items():
                version, stored = loaded[key]
                record = stored or EMPTY
                for index in indexes:
                    event = events[index]
                    user, session = plans[index]
                    if borrowed and index in borrowed and record.user_at_time(event.timestamp) != user:
                        strays.add(index)
                        continue
                    kind = event.kind
                    if kind is _ALIAS:
                        record = self.rules.link(record, user, event.timestamp)  # type: ignore[arg-type]
                        results[index] = []  # consumed: the link is all an alias means here
                        continue
                    record, user_id, session_id = apply(key, record, event, user, session)
                    results[index] = [replace(event, user_id=user_id, session_id=session_id)]
                    if user_id is not None and kind is _INTERACTION:
                        at = event.timestamp if event.timestamp < now else now
                        if at > active.get(user_id, 0.0):
                            active[user_id] = at
                for at, device in reversed(devices[key].devices) if key in devices else ():
                    record = record.with_device(at, device)  # merged: another writer may have added logins
                if record is not stored and record != stored:
                    writes.append(new(Write, (key, version, record)))
            conflicts = await self.store.save(writes, active) if writes else {}
            self.cache.put_saved(writes, conflicts)
            if not conflicts:
                return strays
            self.refused_saves += len(conflicts)
            log.debug("identity: %d key(s) changed by another writer; recomputing them", len(conflicts))
            for key, current in conflicts.items():
                self.cache.put(key, current, from_store=True)  # e.g. expired: the version restarts at 0
                loaded[key] = current
            pending = {key: by_key[key] for key in conflicts}
            strays -= {index for indexes in pending.values() for index in indexes}  # decided again
        raise RetryableError(f"identity: {len(pending)} key(s) kept changing under concurrent writers")

    async def close(self) -> None:
        await self.store.close()


def _clean(value: str | None) -> str | None:
    """Placeholder ids ("null", "undefined", "") are missing ids, never keys: they would merge strangers."""
    return None if value is None or is_placeholder_id(value) else value


def _reject(event: Event, reason: str, message: str) -> Rejection:
    return Rejection(source=event.source, reason=reason, message=message, raw=event.raw)
