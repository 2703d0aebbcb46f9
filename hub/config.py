"""HubConfig: the YAML file, `${VAR}` / `${VAR:-default}` interpolation and every problem in one error."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from hub import registry
from hub.delivery.retry import RetryConfig
from hub.errors import ConfigError
from hub.events import TimestampWindow
from hub.http_server import HttpLimits
from hub.identity.config import IdentityConfig
from hub.jobs import Jobs, WorkersConfig, check_jobs
from hub.mapping.config import MappingConfig
from hub.readiness import ReadinessConfig
from hub.recommendations import RecommendationsConfig
from hub.schema import SchemasConfig
from personalize_hub.console.config import ConsoleConfig

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}")


class HttpConfig(BaseModel):
    """The hub's HTTP server: webhooks, /metrics, health and /recommendations."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 only behind a proxy or in a container.")
    port: int = Field(8080, ge=0, le=65535, description="Port to listen on.")
    limits: HttpLimits = Field(default_factory=HttpLimits, description="What one client may hold (hub/http_server.py).")


class TimestampsConfig(BaseModel):
    """Event times outside this window are rejected (`invalid_timestamp`) by every source, never stored."""

    model_config = ConfigDict(extra="forbid")

    earliest: datetime = Field(datetime(2000, 1, 1, tzinfo=timezone.utc),
                               description="No event before this instant (ISO-8601; UTC when no offset).")
    max_ahead_secs: float = Field(86_400.0, ge=0, description="No event more than this far after the hub's clock.")

    def window(self) -> TimestampWindow:
        earliest = self.earliest if self.earliest.tzinfo else self.earliest.replace(tzinfo=timezone.utc)
        return TimestampWindow(earliest_secs=earliest.timestamp(), max_ahead_secs=self.max_ahead_secs)


class AwsConfig(BaseModel):
    """How AWS clients are built (hub/aws.py); credentials come from the standard AWS chain, never config."""

    model_config = ConfigDict(extra="forbid")

    region: str = Field("us-east-1", description="AWS region.")
    personalize_endpoint_url: str | None = Field(
        None, description="Personalize endpoint override, e.g. local_personalize; empty means real AWS."
    )
    endpoint_url: str | None = Field(None, description="Endpoint override for other services (S3, SES).")


class _HubConfigBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    http: HttpConfig = Field(default_factory=HttpConfig)
    aws: AwsConfig = Field(default_factory=AwsConfig)
    timestamps: TimestampsConfig = Field(default_factory=TimestampsConfig, description="Accepted event times.")
    identity: IdentityConfig = Field(default_factory=IdentityConfig, description="Session stitching, user links.")
    mapping: MappingConfig = Field(default_factory=MappingConfig, description="Events → Personalize records.")
    schemas: SchemasConfig = Field(default_factory=SchemasConfig, description="Dataset schemas to validate against.")
    retry: RetryConfig = Field(default_factory=RetryConfig, description="Delivery retry budget.")
    workers: WorkersConfig = Field(default_factory=WorkersConfig, description="Celery workers for batch jobs.")
    jobs: Jobs = Field(default_factory=list, description="Scheduled batch jobs (hub/jobs.py).")
    readiness: ReadinessConfig = Field(default_factory=ReadinessConfig, description="Training-readiness counters.")
    console: ConsoleConfig = Field(default_factory=ConsoleConfig, description="The operator console under /console.")
    recommendations: RecommendationsConfig = Field(
        default_factory=RecommendationsConfig, description="GET /recommendations for Braze Connected Content.")

    @model_validator(mode="after")
    def _check_references(self) -> _HubConfigBase:
        ids = [c.id for c in [*self.sources, *self.destinations]]  # type: ignore[attr-defined]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"connector ids must be unique; repeated: {', '.join(duplicates)}")
        dead_letter = self.dead_letter  # type: ignore[attr-defined]
        if not registry.can_hold_dead_letter(dead_letter.type):
            raise ValueError(f"dead_letter: type {dead_letter.type!r} cannot hold a dead letter")
        if problems := check_jobs(self.jobs, self.workers):
            raise ValueError("; ".join(problems))
        return self


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
    from hub.bootstrap import read_env_file

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


_TYPE_NAMES = set(registry.sources()) | set(registry.destinations())
