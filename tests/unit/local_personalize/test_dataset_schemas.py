"""CreateSchema checks and record coercion (docs/reference/personalize-api.md#dataset-schemas)."""

from __future__ import annotations

import orjson
import pytest

from local_personalize.errors import InvalidInput
from local_personalize.schemas import check_for_dataset, parse_schema
from synthetic_shop import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, USERS_SCHEMA


def schema_text(name, fields):
    return orjson.dumps({"type": "record", "name": name, "namespace": "com.amazonaws.personalize.schema",
                         "fields": fields, "version": "1.0"}).decode()


def test_reference_schemas_parse():
    for schema, kind in ((INTERACTIONS_SCHEMA, "INTERACTIONS"), (ITEMS_SCHEMA, "ITEMS"), (USERS_SCHEMA, "USERS")):
        check_for_dataset(parse_schema(orjson.dumps(schema).decode()), kind)


@pytest.mark.parametrize("name, fields, fragment", [
    ("Interactions", [{"name": "USER_ID", "type": "string"}, {"name": "TIMESTAMP", "type": "long"}], "ITEM_ID"),
    ("Interactions", [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                      {"name": "TIMESTAMP", "type": "string"}], "TIMESTAMP must be"),
    ("Interactions", [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                      {"name": "TIMESTAMP", "type": "long"},
                      {"name": "EVENT_TYPE", "type": "string", "categorical": True}], "must not be categorical"),
    ("Items", [{"name": "ITEM_ID", "type": "string"}, {"name": "GENRE", "type": "string"}], "must be categorical"),
    ("Items", [{"name": "ITEM_ID", "type": "string"}, {"name": "TAGS", "type": {"type": "array", "items": "string"}}],
     "unsupported type"),
    ("Items", [{"name": "ITEM_ID", "type": "string"}, {"name": "PRICE", "type": "int", "categorical": True}],
     "only string fields"),
    ("Users", [{"name": "USER_ID", "type": "string"}, {"name": "BIO", "type": "string", "textual": True}],
     "only in Items"),
    ("Users", [{"name": "USER_ID", "type": "string"}], "at least one metadata field"),
    ("Items", [{"name": "ITEM_ID", "type": "string"}, {"name": "GENRES_FIELD_1", "type": "float"},
               {"name": "GENRESFIELD1", "type": "float"}], "clash"),
])
def test_bad_schemas_are_refused(name, fields, fragment):
    with pytest.raises(InvalidInput) as raised:
        parse_schema(schema_text(name, fields))
    assert fragment in raised.value.message


def test_not_json_and_not_a_record():
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_schema("{")
    with pytest.raises(InvalidInput, match="Avro record"):
        parse_schema('{"type": "enum"}')


def test_dataset_type_must_match_the_record_name():
    with pytest.raises(InvalidInput, match="record name is Users"):
        check_for_dataset(parse_schema(orjson.dumps(ITEMS_SCHEMA).decode()), "USERS")


def test_properties_map_camel_case_keys_and_types():
    fields = [{"name": "ITEM_ID", "type": "string"}, {"name": "NUMBER_OF_RATINGS", "type": "int"},
              {"name": "PRICE", "type": ["null", "double"]}, {"name": "IN_STOCK", "type": "boolean"},
              {"name": "GENRES", "type": "string", "categorical": True}]
    schema = parse_schema(schema_text("Items", fields))
    record = schema.coerce_properties({"numberOfRatings": "12", "price": 9.5, "inStock": "true",
                                       "genres": "Horror|Action"}, "items.1")
    assert record == {"NUMBER_OF_RATINGS": 12, "PRICE": 9.5, "IN_STOCK": True, "GENRES": "Horror|Action"}
    with pytest.raises(InvalidInput, match="not a field"):
        schema.coerce_properties({"colour": "red"}, "items.1")
    with pytest.raises(InvalidInput, match="integer"):
        schema.coerce_properties({"numberOfRatings": "many"}, "items.1")
