"""Dataset schemas (docs/reference/personalize-api.md#dataset-schemas): check Avro JSON on CreateSchema, then coerce records to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import fastavro
import orjson

from local_personalize.domains import check_domain_schema
from local_personalize.errors import InvalidInput

PRIMITIVES = frozenset({"float", "double", "int", "long", "string", "boolean"})
NUMERIC = frozenset({"float", "double", "int", "long"})
DATASET_TYPES = {"INTERACTIONS": "Interactions", "ITEMS": "Items", "USERS": "Users", "ACTIONS": "Actions",
                 "ACTION_INTERACTIONS": "Action_Interactions"}
# Reserved fields per dataset type and the types they must have (docs/reference/personalize-api.md#dataset-schemas).
REQUIRED_FIELDS = {
    "INTERACTIONS": {"USER_ID": {"string"}, "ITEM_ID": {"string"}, "TIMESTAMP": {"long", "int"}},
    "ITEMS": {"ITEM_ID": {"string"}},
    "USERS": {"USER_ID": {"string"}},
    "ACTIONS": {"ACTION_ID": {"string"}},
    "ACTION_INTERACTIONS": {"ACTION_ID": {"string"}, "TIMESTAMP": {"long", "int"}, "EVENT_TYPE": {"string"}},
}
RESERVED_OPTIONAL = {
    "INTERACTIONS": {"EVENT_TYPE": {"string"}, "EVENT_VALUE": {"float", "double"}, "IMPRESSION": {"string"},
                     "RECOMMENDATION_ID": {"string"}, "EVENT_ATTRIBUTION_SOURCE": {"string"}},
    "ITEMS": {"CREATION_TIMESTAMP": {"long", "int"}},
    "USERS": {},
    "ACTIONS": {"CREATION_TIMESTAMP": {"long", "int"}},
    "ACTION_INTERACTIONS": {"USER_ID": {"string"}, "IMPRESSION": {"string"}, "RECOMMENDATION_ID": {"string"}},
}
# Metadata field quotas: Interactions 5, Users 25, Items 100 (docs/reference/personalize-api.md#quotas, current values).
MAX_METADATA_FIELDS = {"INTERACTIONS": 5, "USERS": 25, "ITEMS": 100, "ACTIONS": 100, "ACTION_INTERACTIONS": 5}


@dataclass(frozen=True)
class Field:
    """One schema field: its Avro types without null, and the Personalize flags."""

    name: str
    types: frozenset[str]
    nullable: bool
    categorical: bool
    textual: bool

    def coerce(self, value: Any) -> Any:
        """A CSV cell or `properties` value as this field's type; ValueError says why not."""
        if value is None or value == "":
            if self.nullable:
                return None
            if value is None or "string" not in self.types:
                raise ValueError(f"{self.name} must not be empty")
        if "string" in self.types and isinstance(value, str):
            return value
        if isinstance(value, bool) or (isinstance(value, str) and value in ("true", "false")):
            if "boolean" not in self.types:
                raise ValueError(f"{self.name} must be {'/'.join(sorted(self.types))}, got {value!r}")
            return value is True or value == "true"
        if self.types & {"int", "long"} and not self.types & {"float", "double"}:
            try:
                return int(value)
            except (TypeError, ValueError):
                try:
                    as_float = float(value)
                except (TypeError, ValueError):
                    as_float = None
                if as_float is not None and as_float.is_integer():
                    return int(as_float)
                raise ValueError(f"{self.name} must be an integer, got {value!r}") from None
        if self.types & NUMERIC:
            try:
                return float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{self.name} must be a number, got {value!r}") from None
        if "string" in self.types:
            return str(value)
        raise ValueError(f"{self.name} must be {'/'.join(sorted(self.types))}, got {value!r}")


@dataclass(frozen=True)
class DatasetSchema:
    """A parsed CreateSchema document."""

    record_name: str
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def property_field(self, key: str) -> Field | None:
        """The field a camelCase `properties` key names (numberOfRatings ↔ NUMBER_OF_RATINGS, docs/reference/personalize-api.md#putevents)."""
        folded = key.replace("_", "").lower()
        return next((f for f in self.fields if f.name.replace("_", "").lower() == folded), None)

    def coerce_properties(self, properties: dict[str, Any], where: str) -> dict[str, Any]:
        """Map `properties` keys to schema field names and values to their types; InvalidInput if not."""
        record: dict[str, Any] = {}
        for key, value in properties.items():
            field = self.property_field(key)
            if field is None:
                raise InvalidInput(f"Property '{key}' at '{where}' is not a field of the dataset schema")
            try:
                record[field.name] = field.coerce(value)
            except ValueError as error:
                raise InvalidInput(f"Property '{key}' at '{where}': {error}") from None
        return record


def _field(raw: Any) -> Field:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise InvalidInput("Every schema field must be an object with a name")
    declared = raw.get("type")
    options = declared if isinstance(declared, list) else [declared]
    types: set[str] = set()
    nullable = False
    for option in options:
        if option == "null":
            nullable = True
        elif isinstance(option, str) and option in PRIMITIVES:
            types.add(option)
        else:
            raise InvalidInput(f"Field {raw['name']} has unsupported type {orjson.dumps(declared).decode()}: "
                               "only flat float, double, int, long, string, boolean and null are allowed")
    if not types:
        raise InvalidInput(f"Field {raw['name']} must have a type other than null")
    categorical, textual = raw.get("categorical") is True, raw.get("textual") is True
    if (categorical or textual) and types != {"string"}:
        raise InvalidInput(f"Field {raw['name']}: only string fields can be categorical or textual")
    if categorical and textual:
        raise InvalidInput(f"Field {raw['name']} cannot be both categorical and textual")
    return Field(raw["name"], frozenset(types), nullable, categorical, textual)


def parse_schema(text: str) -> DatasetSchema:
    """Check a CreateSchema document: valid Avro, a flat record, unique names; InvalidInput if not."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"Schema is not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("type") != "record":
        raise InvalidInput("Schema must be an Avro record")
    try:
        fastavro.parse_schema(document)
    except Exception as error:  # fastavro raises several exception types for bad schemas
        raise InvalidInput(f"Schema is not valid Avro: {error}") from None
    fields = tuple(_field(raw) for raw in document.get("fields") or [])
    if not fields:
        raise InvalidInput("Schema must have fields")
    seen: dict[str, str] = {}
    for field in fields:
        # Names must stay unique when underscores are ignored: GENRES_FIELD_1 clashes with GENRESFIELD1.
        folded = field.name.replace("_", "").upper()
        if folded in seen:
            raise InvalidInput(f"Field names {seen[folded]} and {field.name} clash")
        seen[folded] = field.name
    schema = DatasetSchema(str(document.get("name", "")), fields)
    dataset_type = next((t for t, name in DATASET_TYPES.items() if name.lower() == schema.record_name.lower()), None)
    if dataset_type is not None:
        check_for_dataset(schema, dataset_type)
    return schema


def check_for_dataset(schema: DatasetSchema, dataset_type: str, domain: str | None = None) -> None:
    """The rules a schema must meet to back a dataset of this type (docs/reference/personalize-api.md#dataset-schemas); InvalidInput if it does not."""
    expected = DATASET_TYPES[dataset_type]
    if schema.record_name.lower() != expected.lower():
        raise InvalidInput(f"A {dataset_type} dataset needs a schema whose record name is {expected}, "
                           f"not {schema.record_name!r}")
    required, optional = REQUIRED_FIELDS[dataset_type], RESERVED_OPTIONAL[dataset_type]
    for name, types in required.items():
        field = schema.field(name)
        if field is None:
            raise InvalidInput(f"{expected} schema must have a {name} field")
        if not field.types <= types or field.nullable:
            raise InvalidInput(f"{name} must be a non-null {'/'.join(sorted(types))}")
    if domain:
        check_domain_schema(schema, dataset_type, domain)
    metadata = [f for f in schema.fields if f.name not in required]
    for field in metadata:
        if field.name in optional:
            if not field.types <= optional[field.name]:
                raise InvalidInput(f"{field.name} must be {'/'.join(sorted(optional[field.name]))}")
            if field.categorical and field.name == "EVENT_TYPE":
                raise InvalidInput("EVENT_TYPE must not be categorical")
            continue
        if field.textual and dataset_type != "ITEMS":
            raise InvalidInput(f"Field {field.name}: textual fields are allowed only in Items schemas")
        if field.types == {"string"} and not (field.categorical or field.textual):
            raise InvalidInput(f"String metadata field {field.name} must be categorical"
                               + (" or textual" if dataset_type == "ITEMS" else ""))
    custom = [f for f in metadata if f.name not in optional]
    if dataset_type in ("ITEMS", "USERS") and not custom:
        raise InvalidInput(f"{expected} schema must have at least one metadata field")
    if len(custom) > MAX_METADATA_FIELDS[dataset_type]:
        raise InvalidInput(f"{expected} schema has {len(custom)} metadata fields; "
                           f"the limit is {MAX_METADATA_FIELDS[dataset_type]}")
    if sum(f.textual for f in schema.fields) > 1:
        raise InvalidInput("Items schemas may have at most one textual field")
