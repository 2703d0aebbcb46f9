"""The active-users input: lines from the identity store's activity index, and the configs that cannot give one."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from hub.events import Event, EventKind, SourceRef
from hub.identity import IdentityConfig
from workers.active_users import NoActivityIndex, active_user_lines, unusable_because

DAY = 86_400


def visit(message_id: str, user: str | None, days_ago: float, *, kind: EventKind = EventKind.INTERACTION) -> Event:
    return Event(kind=kind, source=SourceRef(source_id="web", message_id=message_id),
                 timestamp=time.time() - days_ago * DAY, name="Product Viewed", call="track", user_id=user,
                 anonymous_id=f"device-{message_id}")


def record_visits(identity: IdentityConfig, events: list[Event]) -> None:
    """What a running hub does: its identity stage stitches the events, noting who was active."""
    async def run() -> None:
        stage = identity.build()
        await stage.apply(events)
        await stage.close()
    asyncio.run(run())


def sqlite_identity(tmp_path) -> IdentityConfig:
    return IdentityConfig.model_validate({"store": {"type": "sqlite", "path": str(tmp_path / "identity.sqlite3")}})


def test_the_users_active_in_the_window_become_user_id_lines(tmp_path):
    identity = sqlite_identity(tmp_path)
    record_visits(identity, [
        *(visit(f"v{n}", f"u{n}", days_ago=n % 6 + 0.5) for n in range(2500)),  # several listing pages
        visit("old", "lapsed", days_ago=8),
        visit("anon", None, days_ago=1),
        visit("id", "synced", days_ago=1, kind=EventKind.IDENTIFY),
    ])
    lines = active_user_lines(identity, 7)
    users = [orjson.loads(line) for line in lines]
    assert sorted(u["userId"] for u in users) == sorted(f"u{n}" for n in range(2500))
    assert all(set(u) == {"userId"} for u in users)  # no email: the index knows ids only
    assert [orjson.loads(line)["userId"] for line in active_user_lines(identity, 1)] == sorted(
        f"u{n}" for n in range(0, 2500, 6))  # 0.5 days ago: SQLite lists by userId


@pytest.mark.parametrize(("identity", "reason"), [
    ({"enabled": False}, "identity.enabled is false"),
    ({"store": {"type": "memory"}}, "memory: it lives inside the hub process"),
    ({"store": {"type": "sqlite", "path": "/nonexistent/identity.sqlite3"}}, "does not exist"),
    ({"store": {"type": "redis", "url": "redis://127.0.0.1:1/0"}, "record_ttl_secs": 3 * DAY},
     "7 days exceed identity.record_ttl_secs (3 days)"),
])
def test_a_config_without_a_usable_activity_index_is_refused_with_its_reason(identity, reason):
    config = IdentityConfig.model_validate(identity)
    assert reason in unusable_because(config, 7)
    with pytest.raises(NoActivityIndex, match="input active_in_last_days: "):
        active_user_lines(config, 7)  # refused at once, before any line is read


def test_a_redis_store_within_its_ttl_is_usable_without_connecting():
    assert unusable_because(IdentityConfig.model_validate({"store": {"type": "redis", "url": "redis://x"}}), 30) is None
