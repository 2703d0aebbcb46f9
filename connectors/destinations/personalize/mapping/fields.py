"""Allow-listed `properties` per dataset: which schema fields are kept, from which paths, under which key.

The table comes from the config when it names fields, else from the dataset schema (every metadata
field, looked up under its snake_case, camelCase and UPPER_SNAKE spellings), else from the defaults.
Output keys are the schema's camelCase (NUMBER_OF_RATINGS → numberOfRatings,
docs/reference/personalize-api.md#putevents).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.destinations.personalize.mapping.paths import FieldPath, Scopes, compile_paths, first_value
from connectors.destinations.personalize.schema import (
    RESERVED_EVENT_PROPERTY_KEYS,
    RESERVED_FIELDS,
    DatasetSchema,
    camel_case,
    fold_key,
)
from hub.errors import ConfigError
from hub.events import to_epoch_secs


@dataclass(frozen=True, slots=True)
class PropertyField:
    """One allow-listed field: its `properties` key, where to look, and an optional value normaliser."""

    key: str
    paths: tuple[FieldPath, ...]
    normalise: Callable[[Any], Any] | None = None


def property_table(
    section: str,
    dataset_type: str,
    configured: Mapping[str, Sequence[str]] | None,
    schema: DatasetSchema | None,
    default: Mapping[str, Sequence[str]],
    scopes: Sequence[str],
) -> tuple[PropertyField, ...]:
    """The fields kept for one dataset; ConfigError when the config names a field the schema lacks."""
    if configured is not None:
        fields = dict(configured)
    elif schema is not None:
        fields = {f.name: _spellings(f.name, scopes) for f in schema.metadata}
    else:
        fields = dict(default)
    problems = []
    table = []
    for name, paths in fields.items():
        key = camel_case(name)
        if name in RESERVED_FIELDS[dataset_type] or (
            dataset_type == "INTERACTIONS" and fold_key(key) in RESERVED_EVENT_PROPERTY_KEYS
        ):
            problems.append(f"{section}.properties.{name}: a reserved field, not a property")
            continue
        if schema is not None and key not in schema.by_key:
            problems.append(f"{section}.properties.{name}: not a field of the {dataset_type.title()} schema")
            continue
        table.append(PropertyField(key, compile_paths(paths), _normaliser(name, schema)))
    if problems:
        raise ConfigError(problems)
    return tuple(table)


def collect(table: Sequence[PropertyField], scopes: Scopes) -> dict[str, Any]:
    """The allow-listed values present in `scopes`, under their camelCase keys."""
    values = {}
    for field in table:
        path, value = first_value(field.paths, scopes)
        if path is not None:
            values[field.key] = field.normalise(value) if field.normalise else value
    return values


def _spellings(name: str, scopes: Sequence[str]) -> list[str]:
    seen: dict[str, None] = {}
    for scope in scopes:
        for spelling in (name.lower(), camel_case(name), name):
            seen.setdefault(f"{scope}.{spelling}", None)
    return list(seen)


def _normaliser(name: str, schema: DatasetSchema | None) -> Callable[[Any], Any] | None:
    """Timestamp fields (e.g. CREATION_TIMESTAMP, a long of epoch seconds) accept ISO strings and millis."""
    field = schema.field(name) if schema is not None else None
    if not name.endswith("TIMESTAMP") or (field is not None and not field.types & {"int", "long"}):
        return None

    def epoch_secs(value: Any) -> Any:
        try:
            return int(to_epoch_secs(value))
        except ValueError:
            return value  # validation names the field and the bad value

    return epoch_secs
