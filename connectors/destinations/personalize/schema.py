"""Personalize dataset schemas (Avro, parsed by fastavro) → per-field tables, camelCase keys, property checks.

A schema is parsed once into `SchemaField`s that carry a precomputed converter, so checking a record is a
dict lookup and a type test per property: fastavro's own record validation costs ~10 µs per record and
stops at the first failure without knowing Personalize's rules (categorical `|` joins, value lengths), so
fastavro is used for what it is good at, proving the schema itself is valid Avro.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from hub.errors import RejectedError
from hub.ids import is_placeholder_id

INTERACTIONS, ITEMS, USERS = "INTERACTIONS", "ITEMS", "USERS"
_RECORD_NAMES = {INTERACTIONS: "Interactions", ITEMS: "Items", USERS: "Users"}

# Ids: 1..256 characters (docs/reference/personalize-api.md#putevents, #putitems-and-putusers, #field-constraints).
MAX_ID_CHARS = 256
# PutEvents impression: 1..25 item ids, ≤1000 characters joined with `|`
# (docs/reference/personalize-api.md#putevents, #quotas).
MAX_IMPRESSION_IDS = 25
MAX_IMPRESSION_CHARS = 1000
# `properties` JSON string: events 1..1024, items ≤32000, users ≤24000 characters
# (docs/reference/personalize-api.md#putevents, #putitems-and-putusers).
MAX_PROPERTIES_CHARS = {INTERACTIONS: 1024, ITEMS: 32000, USERS: 24000}
# Categorical values ≤1000 characters incl. `|` separators; textual item fields ≤20,000
# (docs/reference/personalize-api.md#quotas quotas).
MAX_CATEGORICAL_CHARS = 1000
MAX_TEXTUAL_CHARS = 20_000
# Avro int is 32-bit, long 64-bit (Avro 1.11 spec, primitive types).
_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
# Keys PutEvents `properties` may not carry, compared case-insensitively (docs/reference/personalize-api.md#putevents);
# `_` is ignored too, as Personalize ignores it when matching keys to fields.
RESERVED_EVENT_PROPERTY_KEYS = frozenset(
    {"userid", "sessionid", "eventtype", "timestamp", "recommendationid", "impression"}
)

# Fields a dataset type reserves for a top-level member rather than `properties`
# (docs/reference/personalize-api.md#dataset-schemas).
RESERVED_FIELDS = {
    INTERACTIONS: frozenset({
        "USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "IMPRESSION", "RECOMMENDATION_ID",
        "EVENT_ATTRIBUTION_SOURCE",
    }),
    ITEMS: frozenset({"ITEM_ID"}),
    USERS: frozenset({"USER_ID"}),
}
_REQUIRED_FIELDS = {INTERACTIONS: ("USER_ID", "ITEM_ID", "TIMESTAMP"), ITEMS: ("ITEM_ID",), USERS: ("USER_ID",)}
_PRIMITIVES = frozenset({"string", "int", "long", "float", "double", "boolean"})


_EXACT_FLOAT_INTS = 2**53


def id_text(value: Any, where: str, code: str) -> str | None:
    """A mapped value as Personalize's id string: None when absent or a placeholder ("null", …),
    RejectedError(`invalid_<code>`) for a value that is no id or is too long. The one id rule mapping and
    `check_id` share."""
    if isinstance(value, str):
        if is_placeholder_id(value):
            return None
        text = value
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, float) and value.is_integer():
        if abs(value) > _EXACT_FLOAT_INTS:
            # Past 2**53 a float no longer holds every integer: its digits are not the sender's id.
            raise RejectedError(f"invalid_{code}", f"{where}: {value!r:.80} is a float beyond 2**53, not an exact "
                                "id; send large ids as strings or integers")
        text = str(int(value))
    elif value is None:
        return None
    else:
        raise RejectedError(f"invalid_{code}", f"{where}: {value!r:.80} is not an id")
    if len(text) > MAX_ID_CHARS:
        raise RejectedError(f"invalid_{code}", f"{where}: longer than {MAX_ID_CHARS} characters")
    return text


def check_id(value: Any, field: str, code: str) -> str:
    """A record's id as sent: a string of 1..256 characters that is not a placeholder; RejectedError naming
    `field` (`missing_<code>` when absent, `invalid_<code>` otherwise)."""
    if value is None:
        raise RejectedError(f"missing_{code}", f"{field}: required")
    if not isinstance(value, str) or id_text(value, field, code) is None:
        raise RejectedError(f"invalid_{code}", f"{field}: {value!r:.80} is not an id")
    return value


def impression_ids(value: Any) -> list[str]:
    """Item ids shown, from a list or a `|`-joined string: placeholders and repeats dropped, cut to the limits
    (the first ones shown are kept: truncating drops data, it never invents any)."""
    raw = value.split("|") if isinstance(value, str) else value if isinstance(value, list) else []
    ids: list[str] = []
    length = -1
    for item in raw:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            continue
        text = str(item)
        if is_placeholder_id(text) or len(text) > MAX_ID_CHARS or text in ids:
            continue
        if len(ids) == MAX_IMPRESSION_IDS or length + 1 + len(text) > MAX_IMPRESSION_CHARS:
            break
        ids.append(text)
        length += 1 + len(text)
    return ids


def check_impression(impression: Any) -> None:
    """A record's impression as sent: 1..25 ids, ≤1000 characters joined; RejectedError otherwise."""
    if not isinstance(impression, list) or not 1 <= len(impression) <= MAX_IMPRESSION_IDS:
        raise RejectedError("invalid_impression", f"impression: expected 1..{MAX_IMPRESSION_IDS} item ids")
    for position, item_id in enumerate(impression):
        check_id(item_id, f"impression[{position}]", "impression")
    if sum(map(len, impression)) + len(impression) - 1 > MAX_IMPRESSION_CHARS:
        raise RejectedError("invalid_impression", f"impression: longer than {MAX_IMPRESSION_CHARS} characters")


def fold_key(name: str) -> str:
    """A field name or properties key as Personalize compares them: without `_`, lower-cased."""
    return name.replace("_", "").lower()


def camel_case(field_name: str) -> str:
    """The `properties` key Personalize expects for a schema field: NUMBER_OF_RATINGS → numberOfRatings."""
    first, *rest = [part for part in field_name.split("_") if part] or [field_name]
    return first.lower() + "".join(part[:1].upper() + part[1:].lower() for part in rest)


class SchemaError(ValueError):
    """A schema document that is not a valid Personalize dataset schema."""


Converter = Callable[[Any], str]
"""Turns a property value into the string sent in `properties`; raises ValueError saying why not."""


@dataclass(frozen=True, slots=True)
class SchemaField:
    """One schema field: its Avro types (without null), Personalize flags and the `properties` key."""

    name: str
    types: frozenset[str]
    nullable: bool
    categorical: bool = False
    textual: bool = False
    key: str = ""
    convert: Converter = field(default=str, compare=False, repr=False)


@dataclass(frozen=True)
class DatasetSchema:
    """A parsed dataset schema with its lookup tables precomputed for the hot path."""

    dataset_type: str
    fields: tuple[SchemaField, ...]
    metadata: tuple[SchemaField, ...]  # fields that travel in `properties`
    by_key: Mapping[str, SchemaField]  # camelCase key → field
    required_keys: tuple[str, ...]  # metadata keys that may not be null or missing
    by_folded: Mapping[str, SchemaField]  # key without `_`, lower-cased → field: how Personalize matches keys

    def has(self, name: str) -> bool:
        return any(f.name == name for f in self.fields)

    def field(self, name: str) -> SchemaField | None:
        return next((f for f in self.fields if f.name == name), None)


def parse_schema(document: str | bytes | Mapping[str, Any], dataset_type: str | None = None) -> DatasetSchema:
    """Parse an Avro schema (JSON text or object) for a dataset; SchemaError names what is wrong.

    `dataset_type` (INTERACTIONS, ITEMS, USERS) defaults to the one the record name says.
    """
    try:
        data = orjson.loads(document) if isinstance(document, (str, bytes)) else dict(document)
    except orjson.JSONDecodeError as err:
        raise SchemaError(f"not valid JSON: {err}") from None
    if not isinstance(data, dict) or data.get("type") != "record":
        raise SchemaError('a dataset schema is an Avro record: {"type": "record", ...}')
    try:
        fastavro.parse_schema(data)
    except Exception as err:  # fastavro raises SchemaParseException, ValueError, TypeError, KeyError
        raise SchemaError(f"not a valid Avro schema: {err}") from None
    record_name = str(data.get("name", ""))
    if dataset_type is None:
        dataset_type = next((t for t, n in _RECORD_NAMES.items() if n.lower() == record_name.lower()), None)
        if dataset_type is None:
            raise SchemaError(f"record name {record_name!r}: expected Interactions, Items or Users")
    fields = tuple(_field(raw, dataset_type) for raw in data.get("fields") or ())
    names = {f.name for f in fields}
    missing = [name for name in _REQUIRED_FIELDS[dataset_type] if name not in names]
    if missing:
        raise SchemaError(f"{_RECORD_NAMES[dataset_type]} schema lacks required field(s) {', '.join(missing)}")
    reserved = RESERVED_FIELDS[dataset_type]
    metadata = tuple(f for f in fields if f.name not in reserved)
    by_folded: dict[str, SchemaField] = {}
    for f in fields:
        folded = fold_key(f.name)
        if folded in by_folded:  # Personalize ignores `_` and case: GENRES_FIELD_1 clashes with GENRESFIELD1
            raise SchemaError(f"fields {by_folded[folded].name} and {f.name} clash once `_` and case are ignored")
        by_folded[folded] = f
    for f in metadata:
        if dataset_type == INTERACTIONS and fold_key(f.key) in RESERVED_EVENT_PROPERTY_KEYS:
            raise SchemaError(f"field {f.name}: {f.key!r} is a reserved PutEvents properties key")
    by_key = {f.key: f for f in metadata}
    metadata_folded = {fold_key(f.name): f for f in metadata}
    required = tuple(f.key for f in metadata if not f.nullable)
    return DatasetSchema(dataset_type, fields, metadata, by_key, required, metadata_folded)


def _field(raw: Any, dataset_type: str) -> SchemaField:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise SchemaError("every field is an object with a name")
    name, declared = raw["name"], raw.get("type")
    options = declared if isinstance(declared, list) else [declared]
    if not all(isinstance(o, str) and (o == "null" or o in _PRIMITIVES) for o in options):
        raise SchemaError(f"field {name}: Personalize schemas are flat; {declared!r} is not a primitive or null")
    types = frozenset(o for o in options if o != "null")
    if not types:
        raise SchemaError(f"field {name}: needs a type other than null")
    categorical, textual = raw.get("categorical") is True, raw.get("textual") is True
    if (categorical or textual) and "string" not in types:
        raise SchemaError(f"field {name}: only string fields can be categorical or textual")
    key = camel_case(name)
    converter = _converter(name, key, types, categorical, textual)
    return SchemaField(name, types, "null" in options, categorical, textual, key, converter)


def _converter(name: str, key: str, types: frozenset[str], categorical: bool, textual: bool) -> Converter:
    """The per-field value check, chosen once when the schema is parsed."""
    where = f"properties.{key} ({name})"
    if "string" in types:
        limit = MAX_TEXTUAL_CHARS if textual else MAX_CATEGORICAL_CHARS

        def to_string(value: Any) -> str:
            text = join_values(value, where)
            if len(text) > limit:
                kind = "textual" if textual else "categorical"
                raise RejectedError("value_too_long", f"{where}: {len(text)} characters; the {kind} limit is {limit}")
            return text

        return to_string
    if "boolean" in types:

        def to_boolean(value: Any) -> str:
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                # Personalize wants lower-case true/false (docs/reference/personalize-api.md#dataset-schemas)
                return value.strip().lower()
            raise RejectedError("schema_violation", f"{where}: expected a boolean, got {value!r:.80}")

        return to_boolean
    integral = next((t for t in ("long", "int") if t in types), None) if not types & {"float", "double"} else None
    if integral is not None:
        low, high = _INT_RANGE[integral]

        def to_integer(value: Any) -> str:
            number = _number(value, where)
            if isinstance(number, float) and not number.is_integer():
                raise RejectedError("schema_violation", f"{where}: expected an integer ({integral}), got {value!r:.80}")
            whole = int(number)
            if not low <= whole <= high:
                raise RejectedError("schema_violation", f"{where}: {whole} is out of range for an Avro {integral}")
            return str(whole)

        return to_integer

    def to_float(value: Any) -> str:
        return repr(float(_number(value, where)))

    return to_float


def _number(value: Any, where: str) -> int | float:
    if isinstance(value, bool):
        raise RejectedError("schema_violation", f"{where}: expected a number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value) if value.strip().lstrip("+-").isdigit() else float(value)
        except ValueError:
            raise RejectedError("schema_violation", f"{where}: expected a number, got {value!r:.80}") from None
        if isinstance(number, int):
            return number
    else:
        raise RejectedError("schema_violation", f"{where}: expected a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise RejectedError("schema_violation", f"{where}: {value!r} is not a finite number")
    return number


def join_values(value: Any, where: str) -> str:
    """A scalar or a list of scalars as Personalize's string form; lists become "a|b" (docs/reference/personalize-api.md#putevents categorical)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "|".join(_scalar_text(v, where) for v in value if v is not None)
    return _scalar_text(value, where)


def _scalar_text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RejectedError("schema_violation", f"{where}: {value!r} is not a finite number")
        return repr(value)
    kind = "nested objects" if isinstance(value, dict) else f"{type(value).__name__} values"
    raise RejectedError("invalid_property", f"{where}: {kind} are not allowed; properties are flat")


def load_schema(source: str | Path, dataset_type: str) -> DatasetSchema:
    """A schema from a `.avsc` file path or from the JSON text itself (config values may be either)."""
    text = str(source)
    if not text.lstrip().startswith("{"):
        try:
            text = Path(source).read_text()
        except OSError as err:
            raise SchemaError(f"{source}: {err.strerror}") from None
    return parse_schema(text, dataset_type)


async def from_describe_schema(client: Any, schema_arn: str, dataset_type: str | None = None) -> DatasetSchema:
    """Fetch a schema with DescribeSchema (an aiobotocore `personalize` client from connectors.aws) and parse it."""
    response = await client.describe_schema(schemaArn=schema_arn)
    return parse_schema(response["schema"]["schema"], dataset_type)


async def from_dataset(client: Any, dataset_arn: str) -> DatasetSchema:
    """The schema behind a dataset ARN: DescribeDataset for its schemaArn and type, then DescribeSchema."""
    dataset = (await client.describe_dataset(datasetArn=dataset_arn))["dataset"]
    return await from_describe_schema(client, dataset["schemaArn"], str(dataset["datasetType"]).upper())


class SchemasConfig(BaseModel):
    """Dataset schemas records are validated against before sending (omit one: generic checks only)."""

    model_config = ConfigDict(extra="forbid")

    interactions: str | None = Field(
        None, description="Interactions dataset schema: a .avsc file path or the Avro JSON itself."
    )
    items: str | None = Field(None, description="Items dataset schema: a .avsc file path or the Avro JSON itself.")
    users: str | None = Field(None, description="Users dataset schema: a .avsc file path or the Avro JSON itself.")

    _parsed: dict[str, DatasetSchema | None] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _parse_schemas(self) -> SchemasConfig:
        """Parse every configured schema when the config is loaded, so `hub check` reports bad ones."""
        problems = []
        for dataset_type, source in ((INTERACTIONS, self.interactions), (ITEMS, self.items), (USERS, self.users)):
            try:
                self._parsed[dataset_type] = load_schema(source, dataset_type) if source else None
            except SchemaError as err:
                problems.append(f"{dataset_type.lower()}: {err}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def load(self) -> dict[str, DatasetSchema | None]:
        """The parsed schemas by dataset type (INTERACTIONS, ITEMS, USERS); None where not configured."""
        return dict(self._parsed)
