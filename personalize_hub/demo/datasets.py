"""The demo shop's Personalize dataset schemas (Avro, as CreateSchema takes them)."""

from __future__ import annotations

import json


def _schema(name: str, fields: list[dict]) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "com.amazonaws.personalize.schema",
                       "fields": fields, "version": "1.0"})


INTERACTIONS = _schema("Interactions", [
    {"name": "USER_ID", "type": "string"},
    {"name": "ITEM_ID", "type": "string"},
    {"name": "TIMESTAMP", "type": "long"},
    {"name": "EVENT_TYPE", "type": "string"},
    {"name": "EVENT_VALUE", "type": ["null", "float"]},
])
ITEMS = _schema("Items", [
    {"name": "ITEM_ID", "type": "string"},
    {"name": "CATEGORY", "type": ["null", "string"], "categorical": True},
    {"name": "BRAND", "type": ["null", "string"], "categorical": True},
    {"name": "PRICE", "type": ["null", "float"]},
    {"name": "AVAILABLE", "type": ["null", "string"], "categorical": True},
])
USERS = _schema("Users", [
    {"name": "USER_ID", "type": "string"},
    {"name": "FAVOURITE_CATEGORY", "type": ["null", "string"], "categorical": True},
])
