"""Session and user-link rules: pure functions from (stored record, event) to (new record, userId, sessionId).

Personalize ties anonymous events to a user when a later event carries the same sessionId plus a userId
(ARCHITECTURE.md "Identity and sessions"), so the rules keep one stable session per browsing session
across anonymous → login, open a new one on logout, user switch or idle timeout, and let a source's own
session id win. Every decision is made on event time, never wall-clock time, and a session id is derived
from the message that opened it, so a redelivered batch is stitched exactly as it was the first time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass

import msgspec

from hub.events import Event

_SESSION_PERSON = b"hub.session.v1"  # blake2b personalisation: these ids never equal another hash of ours


class Session(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A browsing session as the store remembers it (array_like: compact in Redis and SQLite).

    gc=False: records hold only strings, numbers and tuples of sessions, so they cannot form cycles, and
    tens of thousands of cached ones would otherwise make every full garbage collection slower.
    """

    id: str
    start: float  # event time of the first event
    last: float  # latest event time seen
    opened_by: str  # message id of the opening event: its redelivery finds this session again
    user: str | None = None  # the user the session is bound to (login stitches it)
    ended: bool = False  # closed by a logout: a later event opens a new session
    user_at: float = 0.0  # event time the session was bound to `user`: earlier anonymous events stay anonymous

    def user_for(self, at: float) -> str | None:
        return self.user if at >= self.user_at else None


class IdentityRecord(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """All the store keeps per identity key (an anonymousId, or a userId for events without one)."""

    user: str | None = None  # the userId this key is linked to (identify, alias, login)
    user_at: float = 0.0  # event time of the last link change: the latest event time wins
    sessions: tuple[Session, ...] = ()  # newest first; older ones so late and redelivered events find theirs

    @property
    def current(self) -> Session | None:
        return self.sessions[0] if self.sessions else None


# Sessions remembered per key: a redelivered batch spanning up to this many sessions of one person
# (login, logout, idle, switch) is stitched exactly as before; ~100 bytes each in the store.
MAX_SESSIONS = 4


EMPTY = IdentityRecord()


def session_id_for(key: str, opened_by: str) -> str:
    """Deterministic session id: the same identity key and opening message give the same id (32 hex)."""
    return hashlib.blake2b(f"{key}\n{opened_by}".encode(), digest_size=16, person=_SESSION_PERSON).hexdigest()


@dataclass(frozen=True)
class SessionRules:
    """The stitching policy; `apply` is called once per event, in order, for events of one key."""

    idle_timeout_secs: float = 1800.0
    logout_events: Collection[str] = frozenset({"Signed Out"})

    def link(self, record: IdentityRecord, user: str, at: float) -> IdentityRecord:
        """Link the key to `user` unless a later event already changed the link (identify, alias, login)."""
        if user == record.user or at < record.user_at:
            return record
        return msgspec.structs.replace(record, user=user, user_at=at)

    def apply(
        self, key: str, record: IdentityRecord, event: Event, explicit_user: str | None, source_session: str | None
    ) -> tuple[IdentityRecord, str | None, str]:
        """The record after `event`, and the userId and sessionId the event is sent with."""
        at = event.timestamp
        if explicit_user is not None:
            record = self.link(record, explicit_user, at)
        if source_session is not None:
            record, session = self._source_session(record, event, explicit_user, source_session)
        else:
            record, session = self._own_session(key, record, event, explicit_user)
        if event.name in self.logout_events and record.current is session and at >= record.user_at:
            # The logout belongs to the session it closes; after it the key is anonymous again.
            closed = msgspec.structs.replace(session, ended=True)
            record = msgspec.structs.replace(record, sessions=(closed, *record.sessions[1:]), user=None, user_at=at)
        return record, explicit_user or session.user_for(at), session.id

    def _own_session(
        self, key: str, record: IdentityRecord, event: Event, explicit_user: str | None
    ) -> tuple[IdentityRecord, Session]:
        at, message_id = event.timestamp, event.message_id
        current = record.current
        if current is not None:
            if current.opened_by == message_id:
                return record, current  # redelivery of an opening event
            known = next((s for s in record.sessions[1:] if s.opened_by == message_id), None)
            if known is not None:
                return record, known
            if at < current.start:
                return record, _session_at(record, at)  # late or redelivered: state never moves back
            if current.ended and at <= current.last:
                return record, current  # before the logout that closed it
            switched = explicit_user is not None and current.user is not None and explicit_user != current.user
            if not current.ended and not switched and at - current.last <= self.idle_timeout_secs:
                return _touch(record, current, at, current.user or explicit_user or _linked(record, at))
        session = Session(
            id=session_id_for(key, message_id), start=at, last=at, opened_by=message_id,
            user=explicit_user or _linked(record, at), user_at=at,
        )
        return _open(record, session), session

    def _source_session(
        self, record: IdentityRecord, event: Event, explicit_user: str | None, session_id: str
    ) -> tuple[IdentityRecord, Session]:
        at, current = event.timestamp, record.current
        if current is not None and current.id == session_id:
            if current.ended and at <= current.last:
                return record, current
            if current.ended:  # the source kept its session across a logout: anonymous from here on
                reopened = msgspec.structs.replace(current, ended=False)
                return _touch(record, reopened, at, explicit_user or _linked(record, at), force=True)
            return _touch(record, current, at, explicit_user or current.user or _linked(record, at))
        known = next((s for s in record.sessions if s.id == session_id), None)
        if known is not None:
            return record, known  # an earlier session of this key, named again by a late event
        session = Session(id=session_id, start=at, last=at, opened_by=event.message_id,
                          user=explicit_user or _linked(record, at), user_at=at)
        if current is not None and at < current.start:
            return record, session  # a late event of a session this key no longer tracks
        return _open(record, session), session


def _session_at(record: IdentityRecord, at: float) -> Session:
    """The newest remembered session that had started by `at` (else the oldest one remembered)."""
    return next((s for s in record.sessions if s.start <= at), record.sessions[-1])


def _touch(
    record: IdentityRecord, session: Session, at: float, user: str | None, *, force: bool = False
) -> tuple[IdentityRecord, Session]:
    """Continue the current session at `at`, bound to `user`; unchanged (no write) for a redelivery."""
    if not force and at <= session.last and user == session.user:
        return record, session
    user_at = session.user_at if user == session.user else at
    touched = msgspec.structs.replace(session, last=max(session.last, at), user=user, user_at=user_at)
    return msgspec.structs.replace(record, sessions=(touched, *record.sessions[1:])), touched


def _open(record: IdentityRecord, session: Session) -> IdentityRecord:
    return msgspec.structs.replace(record, sessions=(session, *record.sessions[:MAX_SESSIONS - 1]))


def _linked(record: IdentityRecord, at: float) -> str | None:
    """The linked user, for events at or after the link was made (a login does not reach back)."""
    return record.user if at >= record.user_at else None
