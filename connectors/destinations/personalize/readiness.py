"""Training readiness: counts what reached each dataset group against Personalize's training minimums."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from connectors.destinations.personalize.events import PersonalizeEvents
from connectors.destinations.personalize.unit import PersonalizeRecord
from hub.connector import Destination
from hub.redis_connection import async_client

log = logging.getLogger(__name__)

# Personalize refuses to train below these (docs/reference/personalize-api.md#statuses failure reasons;
# docs/reference/personalize-api.md#training-minimums):
MIN_INTERACTIONS = 1000
MIN_USERS_WITH_TWO = 25


@dataclass
class Readiness:
    """What one dataset group (keyed by its tracking id) has received through the hub."""

    key: str
    interactions: int = 0
    users: int = 0
    users_with_two: int = 0
    items: int = 0
    event_types: dict[str, int] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.interactions >= MIN_INTERACTIONS and self.users_with_two >= MIN_USERS_WITH_TWO

    def missing(self) -> list[str]:
        gaps = []
        if self.interactions < MIN_INTERACTIONS:
            gaps.append(f"{MIN_INTERACTIONS - self.interactions} more interactions")
        if self.users_with_two < MIN_USERS_WITH_TWO:
            gaps.append(f"{MIN_USERS_WITH_TWO - self.users_with_two} more users with at least 2 interactions")
        return gaps


Interaction = tuple[str | None, str | None, str]  # (user id, item id, event type)


class ReadinessStore(Protocol):
    async def record(self, key: str, interactions: Sequence[Interaction]) -> None: ...
    async def report(self, key: str) -> Readiness: ...
    async def keys(self) -> list[str]: ...
    async def close(self) -> None: ...


class ReadinessConfig(BaseModel):
    """Where delivered-interaction counters are kept (`hub readiness` reads them)."""

    model_config = ConfigDict(extra="forbid")

    store: Literal["sqlite", "redis", "memory"] = Field("sqlite", description="Counter store.")
    path: Path = Field(Path("var/readiness.sqlite3"), description="SQLite file (store: sqlite).")
    redis_url: str | None = Field(None, description="Redis URL (store: redis).")

    def build(self) -> ReadinessStore:
        if self.store == "redis":
            if not self.redis_url:
                raise ValueError("readiness.redis_url is required for store: redis")
            return RedisReadiness(self.redis_url)
        if self.store == "memory":
            return MemoryReadiness()
        return SqliteReadiness(self.path)


def interactions_of(units: Sequence[PersonalizeRecord]) -> list[Interaction]:
    return [(u.event.user_id, u.record["itemId"], u.record["eventType"]) for u in units]


class MemoryReadiness:
    """In-process counters (tests, one-off runs)."""

    def __init__(self) -> None:
        self._users: dict[str, Counter[str]] = {}
        self._items: dict[str, set[str]] = {}
        self._types: dict[str, Counter[str]] = {}
        self._interactions: Counter[str] = Counter()

    async def record(self, key: str, interactions: Sequence[Interaction]) -> None:
        users = self._users.setdefault(key, Counter())
        items = self._items.setdefault(key, set())
        types = self._types.setdefault(key, Counter())
        for user, item, event_type in interactions:
            self._interactions[key] += 1
            if user:
                users[user] += 1
            if item:
                items.add(item)
            types[event_type] += 1

    async def report(self, key: str) -> Readiness:
        users = self._users.get(key, Counter())
        return Readiness(key, self._interactions[key], len(users), sum(1 for n in users.values() if n >= 2),
                         len(self._items.get(key, ())), dict(self._types.get(key, {})))

    async def keys(self) -> list[str]:
        return sorted(self._interactions)

    async def close(self) -> None:
        return None


class SqliteReadiness:
    """Counters in a local SQLite file (the embedded default); queries run off the event loop."""

    def __init__(self, path: Path):
        self._path = path
        self._connection: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def _db(self) -> sqlite3.Connection:
        """Opened on first use, so a hub that never delivers to Personalize leaves no file behind."""
        if self._connection is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS readiness_users (key TEXT, user_id TEXT, n INTEGER, PRIMARY KEY (key, user_id));
                CREATE TABLE IF NOT EXISTS readiness_items (key TEXT, item_id TEXT, PRIMARY KEY (key, item_id));
                CREATE TABLE IF NOT EXISTS readiness_types (key TEXT, event_type TEXT, n INTEGER, PRIMARY KEY (key, event_type));
                """
            )
            self._connection = db
        return self._connection

    async def record(self, key: str, interactions: Sequence[Interaction]) -> None:
        users = Counter(u for u, _, _ in interactions if u)
        items = {i for _, i, _ in interactions if i}
        types = Counter(t for _, _, t in interactions)

        def write() -> None:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO readiness_users VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
                    [(key, u, n) for u, n in users.items()])
                self._db.executemany("INSERT OR IGNORE INTO readiness_items VALUES (?, ?)", [(key, i) for i in items])
                self._db.executemany(
                    "INSERT INTO readiness_types VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
                    [(key, t, n) for t, n in types.items()])

        async with self._lock:
            await asyncio.to_thread(write)

    async def report(self, key: str) -> Readiness:
        def read() -> Readiness:
            users, with_two = self._db.execute(
                "SELECT count(*), coalesce(sum(n >= 2), 0) FROM readiness_users WHERE key = ?", (key,)).fetchone()
            (items,) = self._db.execute("SELECT count(*) FROM readiness_items WHERE key = ?", (key,)).fetchone()
            types = dict(self._db.execute("SELECT event_type, n FROM readiness_types WHERE key = ?", (key,)))
            return Readiness(key, sum(types.values()), users, with_two, items, types)

        return await asyncio.to_thread(read)

    async def keys(self) -> list[str]:
        rows = await asyncio.to_thread(lambda: self._db.execute("SELECT DISTINCT key FROM readiness_types").fetchall())
        return sorted(k for (k,) in rows)

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


# One script call per recorded batch, its values packed as JSON arrays in three arguments: a HINCRBY per user in a
# pipeline cost the hub ~10 µs of redis-py packing each (2.5% of a streaming hub's CPU). A user crosses 2 exactly
# once: when their count before this batch was < 2 and is now >= 2. PFADD takes the items in slices, as Lua's
# `unpack` is bounded by its C stack (LUAI_MAXCSTACK, 8000).
_RECORD = """
redis.call('SADD', KEYS[1], ARGV[1])
local users = cjson.decode(ARGV[2])
local crossed = 0
for i = 1, #users, 2 do
  local n = users[i + 1]
  local total = redis.call('HINCRBY', KEYS[2], users[i], n)
  if total - n < 2 and total >= 2 then crossed = crossed + 1 end
end
if crossed > 0 then redis.call('INCRBY', KEYS[5], crossed) end
local items = cjson.decode(ARGV[3])
for i = 1, #items, 4096 do redis.call('PFADD', KEYS[3], unpack(items, i, math.min(i + 4095, #items))) end
local types = cjson.decode(ARGV[4])
for i = 1, #types, 2 do redis.call('HINCRBY', KEYS[4], types[i], types[i + 1]) end
"""


class RedisReadiness:
    """Counters in Redis, shared by every hub process; one script call per recorded batch.

    Items are counted with a HyperLogLog (±0.81 %): readiness is about thresholds, not exact catalogues.
    """

    def __init__(self, url: str):
        self._redis = async_client(url)
        self._record = self._redis.register_script(_RECORD)  # EVALSHA, loaded again after a SCRIPT FLUSH

    @staticmethod
    def _k(key: str, part: str) -> str:
        return f"hub:readiness:{key}:{part}"

    async def record(self, key: str, interactions: Sequence[Interaction]) -> None:
        users = Counter(u for u, _, _ in interactions if u)
        items = [i for _, i, _ in interactions if i]
        types = Counter(t for _, _, t in interactions)
        keys = ["hub:readiness:keys", *(self._k(key, part) for part in ("users", "items", "types", "users2"))]
        await self._record(keys=keys, args=[key, _flat_json(users), msgspec.json.encode(items), _flat_json(types)])

    async def report(self, key: str) -> Readiness:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hlen(self._k(key, "users"))
            pipe.get(self._k(key, "users2"))
            pipe.pfcount(self._k(key, "items"))
            pipe.hgetall(self._k(key, "types"))
            users, with_two, items, types = await pipe.execute()
        event_types = {t.decode(): int(n) for t, n in types.items()}
        return Readiness(key, sum(event_types.values()), users, int(with_two or 0), items, event_types)

    async def keys(self) -> list[str]:
        return sorted(k.decode() for k in await self._redis.smembers("hub:readiness:keys"))

    async def close(self) -> None:
        await self._redis.aclose()


def _flat_json(counts: Counter[str]) -> bytes:
    """[name, count, name, count, ...] as JSON (what the record script reads)."""
    return msgspec.json.encode([part for pair in counts.items() for part in pair])


class ReadinessRecorder:
    """The pipeline's DeliveryObserver for training readiness: counts the interactions each PutEvents
    destination delivered, under its dataset group's tracking id, in the background (observability must
    never delay an acknowledgement)."""

    def __init__(self, store: ReadinessStore):
        self.store = store
        self._tasks: set[asyncio.Task[None]] = set()

    def wants(self, destination: Destination) -> bool:
        return isinstance(destination, PersonalizeEvents)

    def observe(self, destination: Destination, units: Sequence[PersonalizeRecord]) -> None:
        key = destination.config.tracking_id  # type: ignore[attr-defined] - wants() admits PersonalizeEvents only
        task = asyncio.create_task(self._record(key, interactions_of(units)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, key: str, interactions: list[Interaction]) -> None:
        try:
            await self.store.record(key, interactions)
        except Exception:
            log.warning("readiness counters for %s not updated", key, exc_info=True)

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()
