"""Dataset schemas: parsing with fastavro, Personalize's rules, camelCase keys, loading from files and DescribeSchema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.destinations.personalize.schema import (
    INTERACTIONS,
    ITEMS,
    USERS,
    SchemaError,
    camel_case,
    from_dataset,
    from_describe_schema,
    load_schema,
    parse_schema,
)
from hub.errors import ConfigError
from personalize_hub.config import parse_config

ROOT = Path(__file__).parents[4]
SCHEMAS = ROOT / "tests" / "data" / "schemas"


def record(name: str, *fields: dict) -> str:
    return json.dumps({"type": "record", "name": name, "fields": list(fields)})


USER_ID, ITEM_ID, TIMESTAMP = ({"name": n, "type": t} for n, t in
                                (("USER_ID", "string"), ("ITEM_ID", "string"), ("TIMESTAMP", "long")))


@pytest.mark.parametrize("name, key", [("NUMBER_OF_RATINGS", "numberOfRatings"), ("ITEM_ID", "itemId"),
                                       ("price", "price"), ("GENRES_FIELD_1", "genresField1"), ("A__B", "aB")])
def test_camel_case(name, key):
    assert camel_case(name) == key


@pytest.mark.parametrize("directory", ["examples/schemas", "tests/data/schemas"])
@pytest.mark.parametrize("dataset_type", [INTERACTIONS, ITEMS, USERS])
def test_shipped_schemas_parse(directory, dataset_type):
    schema = load_schema(ROOT / directory / f"{dataset_type.lower()}.avsc", dataset_type)
    assert schema.dataset_type == dataset_type
    assert all(f.name not in ("USER_ID", "ITEM_ID", "TIMESTAMP") for f in schema.metadata)


def test_the_field_table_is_precomputed():
    schema = load_schema(SCHEMAS / "items.avsc", ITEMS)
    assert schema.by_key["creationTimestamp"].name == "CREATION_TIMESTAMP"
    assert schema.by_folded["creationtimestamp"].key == "creationTimestamp"
    assert schema.required_keys == ("category",)  # CATEGORY is not nullable
    assert schema.by_key["description"].textual and schema.by_key["genres"].categorical


@pytest.mark.parametrize("document, problem", [
    ("{not json", "not valid JSON"),
    ('{"type": "enum", "name": "x", "symbols": ["a"]}', "Avro record"),
    (record("Interactions", USER_ID, ITEM_ID, {"name": "TIMESTAMP", "type": "lung"}), "not a valid Avro schema"),
    (record("Interactions", USER_ID, ITEM_ID), "lacks required field(s) TIMESTAMP"),
    (record("Items", ITEM_ID, {"name": "TAGS", "type": {"type": "array", "items": "string"}}), "flat"),
    (record("Items", ITEM_ID, {"name": "N", "type": "int", "categorical": True}), "only string fields"),
    (record("Items", ITEM_ID, {"name": "G_1", "type": "int"}, {"name": "G1", "type": "int"}), "clash"),
    (record("Interactions", USER_ID, ITEM_ID, TIMESTAMP, {"name": "SESSION_ID", "type": "string",
                                                          "categorical": True}), "reserved"),
    (record("Things", ITEM_ID), "expected Interactions, Items or Users"),
])
def test_invalid_schemas_say_why(document, problem):
    with pytest.raises(SchemaError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_schema(document)


def test_the_record_name_gives_the_dataset_type_unless_told():
    assert parse_schema(record("users", USER_ID, {"name": "AGE", "type": "int"})).dataset_type == USERS


class FakePersonalize:
    """The two control-plane calls the schema loader makes, answering like botocore does."""

    def __init__(self, schema_text: str):
        self.schema_text = schema_text
        self.calls: list[tuple[str, dict]] = []

    async def describe_dataset(self, **kwargs):
        self.calls.append(("describe_dataset", kwargs))
        return {"dataset": {"datasetArn": kwargs["datasetArn"], "datasetType": "Items",
                            "schemaArn": "arn:aws:personalize:us-east-1:000000000000:schema/items"}}

    async def describe_schema(self, **kwargs):
        self.calls.append(("describe_schema", kwargs))
        return {"schema": {"schemaArn": kwargs["schemaArn"], "schema": self.schema_text, "name": "items"}}


async def test_schemas_can_be_fetched_with_describe_schema():
    client = FakePersonalize((SCHEMAS / "items.avsc").read_text())
    schema = await from_dataset(client, "arn:aws:personalize:us-east-1:000000000000:dataset/dg/ITEMS")
    assert schema.dataset_type == ITEMS and "category" in schema.by_key
    assert [name for name, _ in client.calls] == ["describe_dataset", "describe_schema"]
    assert (await from_describe_schema(client, "arn:x", ITEMS)).dataset_type == ITEMS


def test_config_takes_a_path_or_the_json_itself_and_reports_bad_ones():
    inline = (SCHEMAS / "users.avsc").read_text()
    config = parse_config({"schemas": {"items": str(SCHEMAS / "items.avsc"), "users": inline}}, {})
    loaded = config.schemas.load()
    assert loaded[ITEMS].dataset_type == ITEMS and loaded[USERS].dataset_type == USERS and loaded[INTERACTIONS] is None
    with pytest.raises(ConfigError, match="schemas: .*interactions: .*lacks required field"):
        parse_config({"schemas": {"interactions": record("Interactions", USER_ID)}}, {})
