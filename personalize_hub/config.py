"""HubConfig: the YAML file, `${VAR}` / `${VAR:-default}` interpolation and every problem in one error."""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from connectors.aws import AwsConfig
from connectors.destinations.personalize.mapping.config import MappingConfig
from connectors.destinations.personalize.readiness import ReadinessConfig
from connectors.destinations.personalize.schema import SchemasConfig
from hub.delivery.retry import RetryConfig
from hub.errors import ConfigError
from hub.events import TimestampWindow
from personalize_hub.http_server import HttpLimits
from hub.identity.config import IdentityConfig
from hub.redis_connection import RedisConfig
from personalize_hub import registry
from personalize_hub.imports.config import ImportsConfig
from personalize_hub.jobs import JOB_KINDS, Jobs, WorkersConfig, check_jobs
from workers.config import NotificationsConfig
from personalize_hub.recommendations import RecommendationsConfig
from personalize_hub.console.config import ConsoleConfig

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}")


class HttpConfig(BaseModel):
    """The hub's HTTP server: webhooks, /metrics, health and /recommendations."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 only behind a proxy or in a container.")
    port: int = Field(8080, ge=0, le=65535, description="Port to listen on.")
    limits: HttpLimits = Field(default_factory=HttpLimits, description="What one client may hold (http_server.py).")


class TimestampsConfig(BaseModel):
    """Event times outside this window are rejected (`invalid_timestamp`) by every source, never stored."""

    model_config = ConfigDict(extra="forbid")

    earliest: datetime = Field(datetime(2000, 1, 1, tzinfo=timezone.utc),
                               description="No event before this instant (ISO-8601; UTC when no offset).")
    max_ahead_secs: float = Field(86_400.0, ge=0, description="No event more than this far after the hub's clock.")

    def window(self) -> TimestampWindow:
        earliest = self.earliest if self.earliest.tzinfo else self.earliest.replace(tzinfo=timezone.utc)
        return TimestampWindow(earliest_secs=earliest.timestamp(), max_ahead_secs=self.max_ahead_secs)


class _HubConfigBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    http: HttpConfig = Field(default_factory=HttpConfig)
    aws: AwsConfig = Field(default_factory=AwsConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig, description="The Redis every section defaults to.")
    timestamps: TimestampsConfig = Field(default_factory=TimestampsConfig, description="Accepted event times.")
    identity: IdentityConfig = Field(default_factory=IdentityConfig, description="Session stitching, user links.")
    mapping: MappingConfig = Field(default_factory=MappingConfig, description="Events → Personalize records.")
    schemas: SchemasConfig = Field(default_factory=SchemasConfig, description="Dataset schemas to validate against.")
    retry: RetryConfig = Field(default_factory=RetryConfig, description="Delivery retry budget.")
    workers: WorkersConfig = Field(default_factory=WorkersConfig, description="Celery workers for batch jobs.")
    jobs: Jobs = Field(default_factory=list, description="Scheduled batch jobs (personalize_hub/jobs.py).")
    readiness: ReadinessConfig = Field(default_factory=ReadinessConfig, description="Training-readiness counters.")
    imports: ImportsConfig = Field(default_factory=ImportsConfig, description="`hub import`: column mapping, files.")
    notifications: NotificationsConfig = Field(
        default_factory=NotificationsConfig, description="Lifecycle events to signed webhooks (import, training, jobs).")
    console: ConsoleConfig = Field(default_factory=ConsoleConfig, description="The operator console under /console.")
    recommendations: RecommendationsConfig = Field(
        default_factory=RecommendationsConfig, description="GET /recommendations for Braze Connected Content.")

    @model_validator(mode="before")
    @classmethod
    def _share_redis_url(cls, tree: Any) -> Any:
        """Each Redis user that names no URL of its own gets `redis.url`: one settings block, not five."""
        shared = tree.get("redis") if isinstance(tree, dict) else None
        url = shared.get("url") if isinstance(shared, dict) else None
        return _with_redis_url(tree, url) if url else tree

    @model_validator(mode="before")
    @classmethod
    def _journal_beside_runs(cls, tree: Any) -> Any:
        """Lifecycle events are kept where the runs they belong to are, unless a Redis is named for them."""
        workers = tree.get("workers") if isinstance(tree, dict) else None
        url = workers.get("redis_url") if isinstance(workers, dict) else None
        notifications = tree.get("notifications") or {}
        if not url or not isinstance(notifications, dict) or notifications.get("redis_url"):
            return tree
        return {**tree, "notifications": {**notifications, "redis_url": url}}

    @model_validator(mode="after")
    def _check_references(self) -> _HubConfigBase:
        ids = [c.id for c in [*self.sources, *self.destinations]]  # type: ignore[attr-defined]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"connector ids must be unique; repeated: {', '.join(duplicates)}")
        destinations = self.destinations  # type: ignore[attr-defined]
        misplaced = [f"destinations[{i}]: {problem}" for i, d in enumerate(destinations)
                     if (problem := registry.misplaced_destination(d.type, in_job=False))]
        if misplaced:
            raise ValueError("; ".join(misplaced))
        dead_letter = self.dead_letter  # type: ignore[attr-defined]
        if not registry.can_hold_dead_letter(dead_letter.type):
            raise ValueError(f"dead_letter: type {dead_letter.type!r} cannot hold a dead letter")
        if problems := check_jobs(self.jobs, self.workers):
            raise ValueError("; ".join(problems))
        return self


def _with_redis_url(tree: dict[str, Any], url: str) -> dict[str, Any]:
    """The raw config tree with `url` set wherever Redis is used and no URL is given (before validation)."""

    def fill(section: Any, key: str = "redis_url") -> Any:
        return {**section, key: url} if isinstance(section, dict) and not section.get(key) else section

    def fill_connectors(configs: Any) -> Any:
        if not isinstance(configs, list):
            return configs
        uses_redis = {name for name, cls in registry.destinations().items() if "redis_url" in cls.Config.model_fields}
        return [fill(c) if isinstance(c, dict) and c.get("type") in uses_redis else c for c in configs]

    tree = dict(tree)
    for section in ("workers", "readiness", "recommendations", "notifications"):
        tree[section] = fill(tree.get(section, {}))
    identity = tree.get("identity")
    store = identity.get("store") if isinstance(identity, dict) else None
    if isinstance(store, dict) and store.get("type") == "redis":
        tree["identity"] = {**identity, "store": fill(store, "url")}
    tree["destinations"] = fill_connectors(tree.get("destinations", []))
    if isinstance(tree.get("jobs"), list):
        tree["jobs"] = [{**job, "destinations": fill_connectors(job.get("destinations"))} if isinstance(job, dict)
                        else job for job in tree["jobs"]]
    return tree


def _build_model() -> type[BaseModel]:
    destination = registry.destination_config_type()
    return create_model(
        "HubConfig",
        __base__=_HubConfigBase,
        __doc__="The whole hub: sources, destinations, dead letter and shared settings.",
        sources=(list[registry.source_config_type()], Field(default_factory=list)),
        destinations=(list[destination], Field(default_factory=list)),
        dead_letter=(
            destination,
            Field(
                default_factory=lambda: {"type": "file", "id": "dead_letter", "path": "var/dead-letter.jsonl"},
                validate_default=True,
                description="Where rejected inputs go, with their reasons (a `file` or `kafka_topic` destination).",
            ),
        ),
    )


HubConfig = _build_model()


def interpolate(tree: Any, environ: Mapping[str, str] | None = None, missing: list[str] | None = None) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string of a parsed YAML tree (`$$` is a literal `$`).

    Substitution happens after parsing, so a variable's value can never change the YAML structure.
    Every missing variable is named with the path where it is used: appended to `missing` when given,
    else raised at once as a ConfigError.
    """
    env = os.environ if environ is None else environ
    collect = missing is not None
    missing = [] if missing is None else missing

    def substitute(text: str, path: str) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, has_default, default = match.group(1), match.group(2), match.group(3)
            value = env.get(name)
            if value is None or (has_default and value == ""):
                if has_default:
                    return default
                missing.append(f"{path or '<root>'}: environment variable {name} is not set")
                return ""
            return value

        return _VARIABLE.sub(replace, text)

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, str):
            return substitute(node, path)
        if isinstance(node, list):
            return [walk(item, f"{path}[{i}]") for i, item in enumerate(node)]
        if isinstance(node, dict):
            return {key: walk(value, f"{path}.{key}" if path else str(key)) for key, value in node.items()}
        return node

    result = walk(tree, "")
    if missing and not collect:
        raise ConfigError(missing)
    return result


def parse_config(data: Any, environ: Mapping[str, str] | None = None) -> BaseModel:
    """Validate a parsed config tree; ConfigError lists every problem with its path."""
    problems: list[str] = []
    tree = interpolate(data if data is not None else {}, environ, problems)
    try:
        config = HubConfig.model_validate(tree)
    except ValidationError as err:
        problems += [_describe(e) for e in err.errors()]
    if problems:
        raise ConfigError(problems)
    return config


ENV_FILE_VARIABLE = "HUB_ENV_FILE"


def environment(environ: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """The variables `${VAR}` reads: the process environment over the KEY=VALUE file HUB_ENV_FILE names.

    `hub bootstrap` writes that file (Personalize ids, generated webhook secrets) for the hub, the
    workers and beat of a compose stack; a variable set in the environment wins over it.
    """
    env = os.environ if environ is None else environ
    path = env.get(ENV_FILE_VARIABLE)
    if not path:
        return env
    from personalize_hub.bootstrap import read_env_file

    try:
        return {**read_env_file(Path(path)), **env}
    except OSError as err:
        raise ConfigError([f"{ENV_FILE_VARIABLE}: {path}: {err.strerror}"]) from None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> BaseModel:
    """Read, interpolate and validate a YAML config file."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError([f"{path}: {err.strerror}"]) from None
    try:
        data = _parse_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError([f"{path}: not valid YAML: {err}"]) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping"])
    return parse_config(data, environment(environ))


_REFERENCE = re.compile(r"\$\$|\$\{[^}\n]*\}")


def _parse_yaml(text: str) -> Any:
    """YAML where `${VAR}` may stand anywhere a value can, also unquoted in `[...]` and `{...}`.

    Braces are YAML flow indicators, so `{api_key: ${KEY}}` does not parse as written. Each reference
    is swapped for a plain-word placeholder before parsing and restored, character for character,
    after: the structure is YAML's alone, and interpolation still happens on the parsed tree.
    """
    references: dict[str, str] = {}
    marker = f"hubref{uuid.uuid4().hex[:12]}x"

    def hide(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$$"
        placeholder = f"{marker}{len(references)}x"
        references[placeholder] = match.group(0)
        return placeholder

    tree = yaml.safe_load(_REFERENCE.sub(hide, text))
    if not references:
        return tree
    placeholders = re.compile(re.escape(marker) + r"\d+x")

    def restore(node: Any) -> Any:
        if isinstance(node, str):
            return placeholders.sub(lambda m: references[m.group(0)], node)
        if isinstance(node, list):
            return [restore(item) for item in node]
        if isinstance(node, dict):
            return {restore(key): restore(value) for key, value in node.items()}
        return node

    return restore(tree)


def load_config_or_exit(path: str | Path) -> BaseModel:
    """`load_config` for a command: every problem on stderr and exit status 2, the code every `hub` command uses."""
    try:
        return load_config(path)
    except ConfigError as err:
        print(err, file=sys.stderr)
        raise SystemExit(2) from None


def _describe(error: Mapping[str, Any]) -> str:
    """`sources[0].write_keys: unknown key`, the form every problem is reported in."""
    # Drop the union-member tags pydantic adds to a discriminated union's path (e.g. "segment_webhook").
    path = ""
    for part in error["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in _TYPE_NAMES:
            path += f".{part}" if path else part
    message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
    return f"{path or '<root>'}: {message}"


_TYPE_NAMES = set(registry.sources()) | set(registry.destinations()) | set(JOB_KINDS)
