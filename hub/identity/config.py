"""The `identity:` config section: which store, how long records live, and the session rules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.identity.rules import SessionRules
from hub.identity.stage import IdentityStage
from hub.identity.store import IdentityStore, MemoryIdentityStore
from hub.secret import Secret


class SqliteStoreConfig(BaseModel):
    """Identity in a local SQLite file: the embedded default, one machine."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["sqlite"] = "sqlite"
    path: Path = Field(Path("var/identity.sqlite3"), description="Database file; parent folders are created.")


class RedisStoreConfig(BaseModel):
    """Identity in Redis: production, shared by every hub process."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["redis"]
    url: Secret = Field(..., description="redis:// or rediss:// URL, e.g. ${REDIS_URL}; never logged.")
    namespace: str = Field("", description="Extra key prefix after hub:identity: to separate hubs sharing a Redis.")


class MemoryStoreConfig(BaseModel):
    """Identity in process memory: tests and throw-away runs; lost on restart."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["memory"]


StoreConfig = Annotated[SqliteStoreConfig | RedisStoreConfig | MemoryStoreConfig, Field(discriminator="type")]


class IdentityConfig(BaseModel):
    """Session stitching and anonymousId → userId links (docs/architecture.md)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Off only for a hub that forwards raw events (e.g. webhook → Kafka).")
    store: StoreConfig = Field(default_factory=SqliteStoreConfig, description="Where identity records live.")
    session_idle_timeout_secs: float = Field(
        1800.0, gt=0, description="Inactivity (event time) after which the next event opens a new session."
    )
    logout_events: list[str] = Field(
        ["Signed Out"], description="Event names that close the session and unlink the anonymousId from the user."
    )
    record_ttl_secs: int = Field(
        30 * 86400, ge=60, description="How long an idle identity (its user link and sessions) is remembered."
    )
    cache_size: int = Field(
        100_000, ge=0, description="Identity records cached in process (each write is still checked by version)."
    )

    def build_store(self) -> IdentityStore:
        store = self.store
        if isinstance(store, RedisStoreConfig):
            from hub.identity.redis_store import RedisIdentityStore

            return RedisIdentityStore(store.url.get_secret_value(), ttl_secs=self.record_ttl_secs,
                                      namespace=store.namespace)
        if isinstance(store, SqliteStoreConfig):
            from hub.identity.sqlite_store import SqliteIdentityStore

            return SqliteIdentityStore(store.path, ttl_secs=self.record_ttl_secs)
        return MemoryIdentityStore(self.record_ttl_secs)

    def build(self) -> IdentityStage:
        """The stage, with its store opened lazily on the first batch (no file or connection before)."""
        rules = SessionRules(self.session_idle_timeout_secs, frozenset(self.logout_events))
        cache_size = 0 if isinstance(self.store, MemoryStoreConfig) else self.cache_size
        return IdentityStage(self.build_store(), rules, cache_size=cache_size)
