"""Session and user-link rules: pure functions from (stored record, event) to (new record, userId, sessionId).

Personalize ties anonymous events to a user when a later event carries the same sessionId plus a userId
(docs/architecture.md), so the rules keep one stable session per browsing session
across anonymous → login, open a new one on logout, user switch or idle timeout, and let a source's own
session id win. Every decision is made on event time, never wall-clock time; a session id is derived
from the message that opened it, and the record keeps a short history of sessions and of link changes,
so a redelivered batch is stitched exactly as it was the first time (tests/unit/hub/test_identity.py
checks this property on generated event sequences). Events of one person are expected in event-time
order; one that arrives late joins the session that was open at its time, without changing state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass

import msgspec

from hub.events import Event

_SESSION_PERSON = b"hub.session.v1"  # blake2b personalisation: these ids never equal another hash of ours
# History kept per key: a redelivered batch spanning up to this many sessions (login, logout, idle,
# switch) or link changes of one person is stitched exactly as before; ~100 / ~25 bytes each stored.
MAX_SESSIONS = 4
MAX_LINKS = 6


class Session(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A browsing session as the store remembers it (array_like: compact in Redis and SQLite).

    gc=False: records hold only strings, numbers and tuples, so they cannot form cycles, and tens of
    thousands of cached ones would otherwise make every full garbage collection slower.
    """

    id: str
    start: float  # event time of the first event
    last: float  # latest event time seen
    opened_by: str  # message id of the opening event: its redelivery finds this session again
    user: str | None = None  # the user the session is bound to: another user on the device opens a new one
    ended: bool = False  # closed by a logout: a later event opens a new session


class IdentityRecord(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """All the store keeps per identity key (an anonymousId, or a userId for events without one)."""

    links: tuple[tuple[float, str | None], ...] = ()  # (event time, userId or None after a logout), newest first
    sessions: tuple[Session, ...] = ()  # newest first
    # On a userId key: (event time, anonymousId key) of the user's logins on devices, newest first.
    # Server-side libraries send only the userId; after a login such events continue the device's session.
    devices: tuple[tuple[float, str], ...] = ()

    @property
    def user(self) -> str | None:
        """The userId the key is linked to now (identify, alias, login; None after a logout)."""
        return self.links[0][1] if self.links else None

    @property
    def user_at(self) -> float:
        return self.links[0][0] if self.links else 0.0

    def device_at(self, at: float) -> str | None:
        """The anonymousId key of the user's latest login strictly before event time `at` (userId keys)."""
        for logged_in_at, key in self.devices:
            if logged_in_at < at:
                return key
        return None

    def with_device(self, at: float, key: str) -> IdentityRecord:
        """The record with a login on device `key` at `at` appended, if it changes device going forward.

        Fed logins in (time, key) order, this is a function of the set of logins seen: a redelivered or
        late one (at or before the latest change) and another event of the same login change nothing.
        """
        if self.devices and (at <= self.devices[0][0] or key == self.devices[0][1]):
            return self
        return msgspec.structs.replace(self, devices=((at, key), *self.devices[:MAX_LINKS - 1]))

    @property
    def current(self) -> Session | None:
        return self.sessions[0] if self.sessions else None

    def user_at_time(self, at: float) -> str | None:
        """Who the key was linked to at event time `at`: a login does not reach back to earlier events,
        and an unlink takes effect just after its instant (the logout event itself is still the user's)."""
        # A loop, not next() over a generator: this runs once or twice per event (the generator doubled it).
        for changed_at, user in self.links:
            if changed_at < at or (changed_at == at and user is not None):
                return user
        return None


EMPTY = IdentityRecord()


def session_id_for(key: str, opened_by: str) -> str:
    """Deterministic session id: the same identity key and opening message give the same id (32 hex)."""
    return hashlib.blake2b(f"{key}\n{opened_by}".encode(), digest_size=16, person=_SESSION_PERSON).hexdigest()


@dataclass(frozen=True)
class SessionRules:
    """The stitching policy; `apply` is called once per event, in order, for events of one key."""

    idle_timeout_secs: float = 1800.0
    logout_events: Collection[str] = frozenset({"Signed Out"})

    def link(self, record: IdentityRecord, user: str | None, at: float) -> IdentityRecord:
        """Link the key to `user` (None: unlink) unless a later event already changed the link.

        At the same instant an unlink wins: a redelivered "Signed Out" carries the user it ends.
        """
        if user == record.user or at < record.user_at or (at == record.user_at and record.user is None):
            return record
        return msgspec.structs.replace(record, links=((at, user), *record.links[:MAX_LINKS - 1]))

    def apply(
        self, key: str, record: IdentityRecord, event: Event, explicit_user: str | None, source_session: str | None
    ) -> tuple[IdentityRecord, str | None, str]:
        """The record after `event`, and the userId and sessionId the event is sent with."""
        at = event.timestamp
        if source_session is not None:
            record, session = self._source_session(record, event, explicit_user, source_session)
        else:
            record, session = self._own_session(key, record, event, explicit_user)
        if explicit_user is not None:
            record = self.link(record, explicit_user, at)
        user = explicit_user or record.user_at_time(at)
        if event.name in self.logout_events and record.current is session and not session.ended:
            # The logout belongs to the session it closes; after it the key is anonymous again.
            closed = msgspec.structs.replace(session, ended=True)
            record = msgspec.structs.replace(self.link(record, None, at), sessions=(closed, *record.sessions[1:]))
        return record, user, session.id

    def _own_session(
        self, key: str, record: IdentityRecord, event: Event, explicit_user: str | None
    ) -> tuple[IdentityRecord, Session]:
        at, message_id = event.timestamp, event.source.message_id
        sessions = record.sessions
        if sessions:
            for known in sessions:  # the current one too: a redelivered opening event finds its session
                if known.opened_by == message_id:
                    return record, known
            current = sessions[0]
            if at < current.start:
                return record, _session_at(record, at)  # late or redelivered: state never moves back
            if current.ended and at <= current.last:
                return record, current  # before the logout that closed it
            # The link at `at` only when the session has no user yet (the common case has one, or no link).
            bound = current.user or (record.user_at_time(at) if record.links and at >= record.user_at else None)
            switched = explicit_user is not None and bound is not None and explicit_user != bound
            if not current.ended and not switched and at - current.last <= self.idle_timeout_secs:
                return _touch(record, current, at, bound or explicit_user)
        session = Session(id=session_id_for(key, message_id), start=at, last=at, opened_by=message_id,
                          user=explicit_user or record.user_at_time(at))
        return _open(record, session), session

    def _source_session(
        self, record: IdentityRecord, event: Event, explicit_user: str | None, session_id: str
    ) -> tuple[IdentityRecord, Session]:
        at, current = event.timestamp, (record.sessions[0] if record.sessions else None)
        if current is not None and current.id == session_id:
            if current.ended and at <= current.last:
                return record, current
            if current.ended:  # the source kept its session across a logout: same id, a new segment
                segment = Session(id=session_id, start=at, last=at, opened_by=event.message_id, user=explicit_user)
                return _open(record, segment), segment
            return _touch(record, current, at, current.user or explicit_user)
        known = next((s for s in record.sessions if s.id == session_id), None)
        if known is not None:
            return record, known  # an earlier session of this key, named again by a late event
        session = Session(id=session_id, start=at, last=at, opened_by=event.message_id,
                          user=explicit_user or record.user_at_time(at))
        if current is not None and at < current.start:
            return record, session  # a late event of a session this key no longer tracks
        return _open(record, session), session


def _session_at(record: IdentityRecord, at: float) -> Session:
    """The newest remembered session that had started by `at` (else the oldest one remembered)."""
    return next((s for s in record.sessions if s.start <= at), record.sessions[-1])


def _touch(record: IdentityRecord, session: Session, at: float, user: str | None) -> tuple[IdentityRecord, Session]:
    """Continue the current session at `at`, bound to `user`; unchanged (no write) for a redelivery."""
    last = session.last
    if at <= last and user == session.user:
        return record, session
    touched = msgspec.structs.replace(session, last=at if at > last else last, user=user)
    return msgspec.structs.replace(record, sessions=(touched, *record.sessions[1:])), touched


def _open(record: IdentityRecord, session: Session) -> IdentityRecord:
    return msgspec.structs.replace(record, sessions=(session, *record.sessions[:MAX_SESSIONS - 1]))
