"""Turns `connectors.CATALOGUE` into the config unions and builds connectors from their configs."""

from __future__ import annotations

import functools
from typing import Annotated, Any, Union

from pydantic import Field

from connectors import CATALOGUE
from hub.connector import BatchedConfig, Context, Destination, RecordSink, Source, SourceConfig


def _catalogue() -> list[type[Source] | type[Destination]]:
    return list(CATALOGUE)


def type_name(cls: type[Source] | type[Destination]) -> str:
    """The `type` a connector is configured by: the single value of its config's `type` Literal."""
    (value,) = cls.Config.model_fields["type"].annotation.__args__
    return value


@functools.cache
def sources() -> dict[str, type[Source]]:
    return {type_name(c): c for c in _catalogue() if issubclass(c, Source)}


@functools.cache
def destinations() -> dict[str, type[Destination]]:
    return {type_name(c): c for c in _catalogue() if issubclass(c, Destination)}


def _union(classes: list[type]) -> Any:
    configs = tuple(c.Config for c in classes)
    if len(configs) == 1:
        return configs[0]
    return Annotated[Union[configs], Field(discriminator="type")]  # noqa: UP007 - built at run time


def source_config_type() -> Any:
    return _union(list(sources().values()))


def destination_config_type() -> Any:
    return _union(list(destinations().values()))


def build_source(config: SourceConfig, context: Context) -> Source:
    return sources()[config.type](config, context)  # type: ignore[attr-defined]


def build_destination(config: BatchedConfig, context: Context) -> Destination:
    return destinations()[config.type](config, context)  # type: ignore[attr-defined]


def misplaced_destination(type_: str, *, in_job: bool) -> str | None:
    """Why a destination of `type_` cannot be listed where it is (top-level `destinations:` or a job's), or None."""
    cls = destinations().get(type_)
    if cls is None:
        return None  # the union reports an unknown type
    if in_job and not cls.export_rows:
        return (f"{type_!r} is a streaming destination (it takes events from sources, not a job's rows): "
                "list it under the top-level destinations")
    if not in_job and not cls.streams_events:
        return (f"{type_!r} is an export destination (it takes a batch job's rows, not events): "
                "list it under a job's destinations")
    return None


def can_hold_dead_letter(type_: str) -> bool:
    cls = destinations().get(type_)
    return cls is not None and issubclass(cls, RecordSink)


def kind_of(type_: str) -> str:
    """"source", "destination" (streaming: takes events), or "export" (takes a batch job's rows)."""
    if type_ in sources():
        return "source"
    return "destination" if destinations()[type_].streams_events else "export"


def describe(type_: str) -> dict[str, Any]:
    """The user documentation of one connector: its docstring and every config field's description."""
    cls = sources().get(type_) or destinations().get(type_)
    if cls is None:
        raise KeyError(type_)
    fields = {}
    for name, info in cls.Config.model_fields.items():
        if name == "type":
            continue
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        fields[name] = {
            "required": info.is_required(),
            "default": default,
            "description": info.description or "",
        }
    return {"type": type_, "kind": kind_of(type_),
            "summary": (cls.__doc__ or "").strip().splitlines()[0], "fields": fields}
