"""The identity rules every store must satisfy; imported by the memory/SQLite and the Redis test modules.

Each importing module provides a `make_store` fixture: a factory of fresh stores, where two calls may
return stores sharing one backend (`make_store(shared=True)`), as two hub processes would.
"""

from __future__ import annotations

import asyncio
import time

from hub.events import Event, EventKind, Rejection, SourceRef
from hub.identity import IdentityStage, SessionRules
from hub.identity.store import ACTIVE_USERS_PER_CHUNK

T0 = 1_700_000_000.0  # event time; the rules never look at the wall clock


def ev(message_id: str, at: float, *, anon: str | None = None, user: str | None = None, name: str = "Product Viewed",
       kind: EventKind = EventKind.INTERACTION, session: str | None = None, previous: str | None = None) -> Event:
    return Event(kind=kind, source=SourceRef(source_id="web", message_id=message_id), timestamp=T0 + at, name=name,
                 call="track", user_id=user, anonymous_id=anon, session_id=session, previous_id=previous,
                 raw={"messageId": message_id})


def ago(secs: float) -> float:
    """The `at` of an event `secs` seconds before now (activity older than the record TTL is trimmed)."""
    return time.time() - secs - T0


async def active(store, since_secs_ago: float) -> list[str]:
    """Users the store lists as active in the last `since_secs_ago` seconds, in listing order."""
    return [user async for user in store.active_users(time.time() - since_secs_ago)]


def stage_for(store, **rules) -> IdentityStage:
    return IdentityStage(store, SessionRules(**{"idle_timeout_secs": 1800.0, **rules}), cache_size=1000)


async def stitch(stage: IdentityStage, events: list[Event]) -> list[tuple[str | None, str | None]]:
    """(userId, sessionId) per event; None for a consumed event."""
    out = []
    for result in await stage.apply(events):
        assert not isinstance(result, Rejection), result
        out.append((result[0].user_id, result[0].session_id) if result else None)
    return out


async def test_one_session_survives_anonymous_to_login(make_store):
    stage = stage_for(make_store())
    results = await stitch(stage, [
        ev("v1", 0, anon="a1"),
        ev("v2", 10, anon="a1"),
        ev("id", 20, anon="a1", user="u1", kind=EventKind.IDENTIFY, name=None),
        ev("v3", 30, anon="a1", user="u1"),
        ev("v4", 40, anon="a1"),  # anonymous again (e.g. a page the SDK sent without the user): linked
    ])
    sessions = {session for _, session in results}
    assert len(sessions) == 1 and None not in sessions
    assert [user for user, _ in results] == [None, None, "u1", "u1", "u1"]


async def test_identify_passes_on_and_alias_is_consumed_but_links(make_store):
    stage = stage_for(make_store())
    identify = ev("id", 0, anon="a1", user="u1", kind=EventKind.IDENTIFY, name=None)
    alias = ev("al", 0, user="u2", previous="a2", kind=EventKind.ALIAS, name=None)
    results = await stage.apply([identify, alias])
    assert results[0][0].kind is EventKind.IDENTIFY and results[0][0].user_id == "u1"
    assert results[1] == []  # consumed: an alias is only a link
    (later,) = await stitch(stage, [ev("v1", 5, anon="a2")])
    assert later[0] == "u2"


async def test_logout_opens_a_new_anonymous_session(make_store):
    stage = stage_for(make_store())
    results = await stitch(stage, [
        ev("v1", 0, anon="a1", user="u1"),
        ev("out", 10, anon="a1", user="u1", name="Signed Out"),
        ev("v2", 20, anon="a1"),
    ])
    assert results[0][1] == results[1][1]  # the logout belongs to the session it closes
    assert results[2][1] != results[1][1]
    assert results[2][0] is None  # no longer linked to u1


async def test_a_different_user_on_the_same_anonymous_id_opens_a_new_session(make_store):
    stage = stage_for(make_store())
    results = await stitch(stage, [
        ev("v1", 0, anon="shared-tablet", user="u1"),
        ev("v2", 10, anon="shared-tablet", user="u2"),
        ev("v3", 20, anon="shared-tablet"),
    ])
    assert results[0][1] != results[1][1]
    assert results[1][1] == results[2][1] and results[2][0] == "u2"


async def test_idle_timeout_opens_a_new_session_that_keeps_the_user(make_store):
    stage = stage_for(make_store(), idle_timeout_secs=60)
    results = await stitch(stage, [
        ev("v1", 0, anon="a1", user="u1"),
        ev("v2", 60, anon="a1"),  # exactly the timeout: still the same session
        ev("v3", 121, anon="a1"),  # 61 s idle
    ])
    assert results[0][1] == results[1][1] != results[2][1]
    assert results[2][0] == "u1"  # the link outlives the session


async def test_the_sources_session_id_wins(make_store):
    stage = stage_for(make_store())
    results = await stitch(stage, [
        ev("v1", 0, anon="mp-1", session="sess-A"),
        ev("v2", 10, anon="mp-1", user="u1", session="sess-A"),
        ev("v3", 5000, anon="mp-1", session="sess-A"),  # idle by our clock, but the source says same session
        ev("v4", 5010, anon="mp-1", session="sess-B"),
    ])
    assert [s for _, s in results] == ["sess-A", "sess-A", "sess-A", "sess-B"]
    assert [u for u, _ in results] == [None, "u1", "u1", "u1"]


async def test_user_only_events_get_a_session_of_their_own(make_store):
    stage = stage_for(make_store())
    results = await stitch(stage, [ev("o1", 0, user="u1"), ev("o2", 10, user="u1")])
    assert results[0] == results[1] and results[0][0] == "u1" and results[0][1]


async def test_a_redelivered_batch_is_stitched_exactly_as_before(make_store):
    batch = [
        ev("v1", 0, anon="a1"),
        ev("id", 10, anon="a1", user="u1", kind=EventKind.IDENTIFY, name=None),
        ev("v2", 20, anon="a1"),
        ev("out", 30, anon="a1", name="Signed Out"),
        ev("v3", 40, anon="a1"),
        ev("v4", 4000, anon="a1"),  # idle
        ev("v5", 4005, anon="a1", user="u1"),
        ev("v6", 4010, anon="a1", user="u2"),  # another user on the same device
    ]
    store = make_store()
    first = await stitch(stage_for(store), batch)
    again = await stitch(stage_for(store), batch)  # a restarted process: nothing cached
    assert again == first
    assert await stitch(stage_for(make_store()), batch) == first  # ids derive from the messages alone
    assert len({s for _, s in first}) == 4  # login kept, logout, idle and user switch each opened one


async def test_a_late_event_joins_the_session_it_belongs_to(make_store):
    stage = stage_for(make_store(), idle_timeout_secs=60)
    results = await stitch(stage, [ev("v1", 0, anon="a1"), ev("v2", 1000, anon="a1")])
    (late,) = await stitch(stage, [ev("v0", 30, anon="a1")])  # arrives after the next session opened
    assert late[1] == results[0][1] != results[1][1]


async def test_placeholder_ids_are_never_keys(make_store):
    stage = stage_for(make_store())
    results = await stage.apply([
        ev("n1", 0, anon="null", user="u1"),
        ev("n2", 0, anon="undefined", user="null"),
        ev("n3", 0, anon="", session="s1"),
    ])
    assert results[0][0].user_id == "u1" and results[0][0].session_id
    assert isinstance(results[1], Rejection) and results[1].reason == "missing_identity"
    assert results[2][0].session_id == "s1" and results[2][0].user_id is None


async def test_items_and_users_pass_untouched(make_store):
    stage = stage_for(make_store())
    item = ev("i1", 0, kind=EventKind.ITEM)
    user = ev("u1", 0, user="u1", kind=EventKind.USER)
    assert await stage.apply([item, user]) == [[item], [user]]


async def test_one_store_round_trip_per_batch_not_per_event(make_store):
    store = make_store()
    stage = stage_for(store)
    # Half the events name a user (one per device): their activity rides on the same save.
    batch = [ev(f"m{i}", ago(1000 - i), anon=f"a{i % 10}", user=f"u{i % 5}" if i % 2 else None) for i in range(100)]
    before = store.round_trips
    await stage.apply(batch)
    assert store.round_trips - before == 2  # one load of the 10 keys, one save (records and activity)
    await stage.apply([ev(f"n{i}", ago(800 - i), anon=f"a{i % 10}") for i in range(100)])
    assert store.round_trips - before == 3  # cached: the save alone
    assert sorted(await active(store, 3600)) == ["u0", "u1", "u2", "u3", "u4"]


async def test_interactions_mark_their_user_active_and_older_ones_fall_outside_the_window(make_store):
    store = make_store()
    stage = stage_for(store)
    await stitch(stage, [
        ev("o1", ago(1800), user="lapsed"),
        ev("r1", ago(1700), anon="d1", user="returning"),
        ev("r2", ago(300), anon="d1"),  # anonymous, but the device is linked: the user is active now
        ev("n1", ago(60), anon="d2"),  # nobody known
        ev("i1", ago(60), anon="d3", user="synced", kind=EventKind.IDENTIFY, name=None),  # a trait sync is no visit
        ev("f1", ago(-86400), user="clock-ahead"),  # a device clock a day ahead: counted as now, not tomorrow
    ])
    assert sorted(await active(store, 900)) == ["clock-ahead", "returning"]
    assert sorted(await active(store, 3000)) == ["clock-ahead", "lapsed", "returning"]
    assert await active(store, -60) == []  # capped at the time it was seen, so never "active" in the future
    # A late event never moves a user back (it keys u:returning, so it does save).
    await stitch(stage, [ev("late", ago(2000), user="returning")])
    assert "returning" in await active(store, 900)


async def test_listing_streams_pages_and_misses_no_one_active_again_meanwhile(make_store):
    store = make_store()
    now = time.time()
    page = ACTIVE_USERS_PER_CHUNK
    # Users at distinct times, except a run of them sharing one time (events sent to the second do) across
    # the end of the first page.
    tie = range(int(0.9 * page), int(1.5 * page))
    times = {f"user-{n:05d}": now - 600 + (tie[0] if n in tie else n) / 1000 for n in range(int(2.5 * page))}
    await store.save([], times)
    listing = store.active_users(now - 900)
    seen = [await anext(listing)]
    # While the listing runs, users are active again: the one listed, one inside the shared time, one later on.
    bumped = [seen[0], f"user-{tie[0]:05d}", f"user-{tie[-1]:05d}", f"user-{2 * page:05d}"]
    await store.save([], dict.fromkeys(bumped, now))
    seen += [user async for user in listing]
    assert set(seen) == set(times)  # nobody active when the listing began is missed
    assert len(seen) - len(set(seen)) <= 1  # only a user active again after being listed may come twice


async def test_user_id_only_events_continue_the_session_the_login_opened(make_store):
    # What a server-side library sends after a web login: the userId alone (no anonymousId).
    stage = stage_for(make_store())
    web = await stitch(stage, [ev("v1", 0, anon="a1"), ev("login", 10, anon="a1", user="u1", name="Signed In")])
    (server,) = await stitch(stage, [ev("order", 20, user="u1", name="Order Completed")])
    (back_on_web,) = await stitch(stage, [ev("v2", 30, anon="a1")])
    assert {session for _, session in [*web, server, back_on_web]} == {web[0][1]}
    assert server == ("u1", web[0][1])


async def test_user_id_only_events_follow_idle_timeout_and_logout(make_store):
    stage = stage_for(make_store())
    (login,) = await stitch(stage, [ev("login", 0, anon="a1", user="u1")])
    (idle,) = await stitch(stage, [ev("late", 5000, user="u1")])  # beyond the 1800 s idle timeout
    assert idle[0] == "u1" and idle[1] != login[1]
    (same,) = await stitch(stage, [ev("next", 5100, user="u1")])
    assert same == idle  # the new session continues, on the device, for web and server events alike
    (web,) = await stitch(stage, [ev("web", 5200, anon="a1")])
    assert web == idle
    await stitch(stage, [ev("out", 5300, anon="a1", user="u1", name="Signed Out")])
    (after,) = await stitch(stage, [ev("after", 5400, user="u1")])
    assert after[0] == "u1" and after[1] not in {login[1], idle[1]}  # a logout ends the shared session


async def test_user_id_only_events_before_the_login_keep_their_own_session_on_redelivery(make_store):
    stage = stage_for(make_store())
    batch = [ev("s1", 0, user="u1"), ev("login", 10, anon="a1", user="u1"), ev("s2", 20, user="u1")]
    first = await stitch(stage, batch)
    assert first[1][1] == first[2][1] != first[0][1]  # the login's session is continued, not the earlier one
    assert await stitch(stage, batch) == first
