"""Server-side request validation: what botocore does not check (max, pattern, enum) plus semantic rules.

botocore checks only required members, JSON types and `min` on the client
(docs/reference/personalize-api.md#client-side-validation-in-botocore), and a client may turn even that off
(`Config(parameter_validation=False)`). So the server re-checks every constraint of the operation's input shape, read
from the service models botocore ships (the source of docs/reference/personalize-api.md#field-constraints), and then the
rules no model states (docs/reference/personalize-api.md#putevents, #getrecommendations). Patterns are matched against
the whole value (Java `matches()` semantics), which rejects names like "a b" that an unanchored search would pass.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import botocore.session
import orjson
from botocore.model import OperationModel, Shape

from local_personalize.errors import InvalidInput

Check = Callable[[Any, str, list[str]], None]

SERVICES = ("personalize", "personalize-events", "personalize-runtime")

# Keys PutEvents/PutActionInteractions `properties` may not carry, compared case-insensitively
# (docs/reference/personalize-api.md#putevents).
FORBIDDEN_EVENT_PROPERTY_KEYS = frozenset(
    {"userid", "sessionid", "eventtype", "timestamp", "recommendationid", "impression"}
)
# Quota: max size of one event, 10 KB (docs/reference/personalize-api.md#quotas).
MAX_EVENT_BYTES = 10 * 1024
# GetRecommendations numResults: max 500, or 50 when metadataColumns are requested
# (docs/reference/personalize-api.md#getrecommendations).
MAX_RESULTS, MAX_RESULTS_WITH_METADATA = 500, 50
# GetActionRecommendations numResults: max 100 (docs/reference/personalize-api.md#getactionrecommendations).
MAX_ACTION_RESULTS = 100


@functools.cache
def service_model(service: str):
    return botocore.session.get_session().get_service_model(service)


@functools.cache
def operation_model(service: str, operation: str) -> OperationModel:
    return service_model(service).operation_model(operation)


# Local extension: S3 data paths may also be `file://` paths on this machine (documented in the README).
S3_PATH_PATTERN, LOCAL_PATH_PATTERN = "(s3|http|https)://.+", "(s3|http|https|file)://.+"


def _java_pattern(pattern: str) -> re.Pattern[str]:
    if pattern == S3_PATH_PATTERN:
        pattern = LOCAL_PATH_PATTERN
    # Java's \p{L}/\p{N}/\p{Z} (used by the tag patterns) have no `re` spelling; these are near enough.
    translated = (pattern.replace(r"\p{L}", r"\w").replace(r"\p{N}", r"\d").replace(r"\p{Z}", r"\s")
                  .replace(r"\p{ASCII}", r"[\x00-\x7f]"))
    return re.compile(translated, re.DOTALL)


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(errors: list[str], value: Any, path: str, constraint: str) -> None:
    errors.append(f"Value '{_show(value)}' at '{path}' failed to satisfy constraint: {constraint}")


def _size_check(metadata: dict, what: str) -> Check:
    low, high = metadata.get("min"), metadata.get("max")

    def check(value: Any, path: str, errors: list[str]) -> None:
        size = len(value)
        if low is not None and size < low:
            _fail(errors, value, path, f"Member must have {what} greater than or equal to {low}")
        if high is not None and size > high:
            _fail(errors, value, path, f"Member must have {what} less than or equal to {high}")

    return check


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@functools.cache
def compile_shape(shape: Shape) -> Check:
    """Turn a botocore shape into a function that appends every violation it finds to `errors`."""
    kind, meta = shape.type_name, shape.metadata
    if kind == "structure":
        members = {name: compile_shape(member) for name, member in shape.members.items()}
        required = tuple(shape.required_members)

        def check_structure(value: Any, path: str, errors: list[str]) -> None:
            if not isinstance(value, dict):
                _fail(errors, value, path, "Member must be a structure")
                return
            for name in required:
                if value.get(name) is None:
                    errors.append(f"Value null at '{path}{name}' failed to satisfy constraint: "
                                  "Member must not be null")
            for name, member_value in value.items():
                member_check = members.get(name)
                if member_check is not None and member_value is not None:
                    member_check(member_value, f"{path}{name}", errors)

        return lambda value, path, errors: check_structure(value, path + "." if path else "", errors)
    if kind == "list":
        member_check, size = compile_shape(shape.member), _size_check(meta, "length")

        def check_list(value: Any, path: str, errors: list[str]) -> None:
            if not isinstance(value, list):
                _fail(errors, value, path, "Member must be a list")
                return
            size(value, path, errors)
            for position, item in enumerate(value, start=1):
                member_check(item, f"{path}.{position}.member", errors)

        return check_list
    if kind == "map":
        key_check, value_check = compile_shape(shape.key), compile_shape(shape.value)
        size = _size_check(meta, "length")

        def check_map(value: Any, path: str, errors: list[str]) -> None:
            if not isinstance(value, dict):
                _fail(errors, value, path, "Member must be a map")
                return
            size(value, path, errors)
            for key, item in value.items():
                key_check(key, f"{path}.key", errors)
                value_check(item, f"{path}.{key}", errors)

        return check_map
    if kind == "string":
        size = _size_check(meta, "length")
        pattern = _java_pattern(meta["pattern"]) if "pattern" in meta else None
        enum = frozenset(shape.enum) if shape.enum else None

        def check_string(value: Any, path: str, errors: list[str]) -> None:
            if not isinstance(value, str):
                _fail(errors, value, path, "Member must be a string")
                return
            size(value, path, errors)
            if pattern is not None and not pattern.fullmatch(value):
                _fail(errors, value, path, f"Member must satisfy regular expression pattern: {meta['pattern']}")
            if enum is not None and value not in enum:
                _fail(errors, value, path, f"Member must satisfy enum value set: [{', '.join(sorted(enum))}]")

        return check_string
    if kind in ("integer", "long", "float", "double"):
        low, high, integral = meta.get("min"), meta.get("max"), kind in ("integer", "long")

        def check_number(value: Any, path: str, errors: list[str]) -> None:
            if not _is_number(value) or (integral and not isinstance(value, int)):
                _fail(errors, value, path, f"Member must be {'an integer' if integral else 'a number'}")
                return
            if low is not None and value < low:
                _fail(errors, value, path, f"Member must have value greater than or equal to {low}")
            if high is not None and value > high:
                _fail(errors, value, path, f"Member must have value less than or equal to {high}")

        return check_number
    if kind == "boolean":
        return lambda value, path, errors: (
            None if isinstance(value, bool) else _fail(errors, value, path, "Member must be a boolean"))
    if kind == "timestamp":
        # The json and rest-json protocols send timestamps as epoch seconds
        # (docs/reference/personalize-api.md#wire-protocols).
        return lambda value, path, errors: (
            None if _is_number(value) else _fail(errors, value, path, "Member must be a timestamp in epoch seconds"))
    return lambda value, path, errors: None


def raise_if_errors(errors: list[str]) -> None:
    if errors:
        count = len(errors)
        noun = "error" if count == 1 else "errors"
        raise InvalidInput(f"{count} validation {noun} detected: " + "; ".join(errors))


def validate_request(service: str, operation: str, body: dict) -> None:
    """Raise InvalidInput naming every constraint of the operation's input the body breaks."""
    shape = operation_model(service, operation).input_shape
    errors: list[str] = []
    if shape is not None:
        compile_shape(shape)(body, "", errors)
    raise_if_errors(errors)
    extra = SEMANTIC_RULES.get(operation)
    if extra is not None:
        extra(body)


def parse_properties(text: str, where: str) -> dict[str, Any]:
    """Decode a `properties` string, which must hold a flat JSON object (docs/reference/personalize-api.md#putevents, #putitems-and-putusers)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidInput(f"Error parsing properties json at '{where}': not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"Error parsing properties json at '{where}': must be a JSON object")
    for key, item in value.items():
        if isinstance(item, (dict, list)):
            raise InvalidInput(f"Property '{key}' at '{where}' must be a string, number or boolean, not nested")
    return value


def _check_event_properties(records: list[dict], where: str) -> None:
    for position, record in enumerate(records, start=1):
        text = record.get("properties")
        if text is None:
            continue
        properties = parse_properties(text, f"{where}.{position}.member.properties")
        forbidden = sorted(key for key in properties if key.lower() in FORBIDDEN_EVENT_PROPERTY_KEYS)
        if forbidden:
            raise InvalidInput(f"Properties at '{where}.{position}.member.properties' may not contain the "
                               f"reserved keys {forbidden}")


def _check_put_events(body: dict) -> None:
    _check_event_properties(body["eventList"], "eventList")
    for position, event in enumerate(body["eventList"], start=1):
        if len(orjson.dumps(event)) > MAX_EVENT_BYTES:
            raise InvalidInput(f"Event at 'eventList.{position}.member' is larger than {MAX_EVENT_BYTES} bytes")


def _check_record_properties(list_key: str) -> Callable[[dict], None]:
    def check(body: dict) -> None:
        for position, record in enumerate(body[list_key], start=1):
            if record.get("properties") is not None:
                parse_properties(record["properties"], f"{list_key}.{position}.member.properties")

    return check


def _check_get_recommendations(body: dict) -> None:
    if (body.get("campaignArn") is None) == (body.get("recommenderArn") is None):
        raise InvalidInput("Provide exactly one of campaignArn or recommenderArn")
    _check_metadata_columns(body)
    limit = MAX_RESULTS_WITH_METADATA if body.get("metadataColumns") else MAX_RESULTS
    if body.get("numResults", 0) > limit:
        raise InvalidInput(f"numResults must be less than or equal to {limit}")


def _check_personalized_ranking(body: dict) -> None:
    _check_metadata_columns(body)
    limit = MAX_RESULTS_WITH_METADATA if body.get("metadataColumns") else MAX_RESULTS
    if len(body["inputList"]) > limit:
        raise InvalidInput(f"inputList must have length less than or equal to {limit}")
    if not body["inputList"]:
        raise InvalidInput("inputList must not be empty")


def _check_metadata_columns(body: dict) -> None:
    columns = body.get("metadataColumns")
    if columns and set(columns) != {"ITEMS"}:
        raise InvalidInput("metadataColumns accepts only the key ITEMS")


def _check_action_recommendations(body: dict) -> None:
    if body.get("numResults", 0) > MAX_ACTION_RESULTS:
        raise InvalidInput(f"numResults must be less than or equal to {MAX_ACTION_RESULTS}")


SEMANTIC_RULES: dict[str, Callable[[dict], None]] = {
    "PutEvents": _check_put_events,
    "PutActionInteractions": lambda body: _check_event_properties(body["actionInteractions"],
                                                                  "actionInteractions"),
    "PutItems": _check_record_properties("items"),
    "PutUsers": _check_record_properties("users"),
    "PutActions": _check_record_properties("actions"),
    "GetRecommendations": _check_get_recommendations,
    "GetPersonalizedRanking": _check_personalized_ranking,
    "GetActionRecommendations": _check_action_recommendations,
}
