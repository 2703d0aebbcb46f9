"""Item catalogs: Personalize's CSV layout, or the PutItems records the hub delivered."""

from __future__ import annotations

import json

import pytest

from workers.catalog import CatalogError, load_catalog


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return f"file://{path}"


def test_csv_columns_are_lower_cased_and_chosen(tmp_path):
    uri = write(tmp_path, "items.csv", '\ufeffITEM_ID,NAME,PRICE,URL\ni1,"Boots, leather",89.90,https://s/i1\n'
                                       "i2,Socks,,https://s/i2\n,Nameless,1,x\n")
    assert load_catalog(uri) == {"i1": {"name": "Boots, leather", "price": "89.90", "url": "https://s/i1"},
                                 "i2": {"name": "Socks", "url": "https://s/i2"}}
    assert load_catalog(uri, ["name"]) == {"i1": {"name": "Boots, leather"}, "i2": {"name": "Socks"}}


def test_put_items_records_later_wins(tmp_path):
    records = [{"itemId": "i1", "properties": json.dumps({"name": "Boots", "genre": "shoes"})},
               {"itemId": "i1", "properties": json.dumps({"name": "Boots v2"})},
               {"itemId": "i2", "properties": {"name": "Socks"}}]
    uri = write(tmp_path, "items.jsonl", "\n".join(json.dumps(r) for r in records))
    assert load_catalog(uri, ["NAME"]) == {"i1": {"name": "Boots v2"}, "i2": {"name": "Socks"}}


@pytest.mark.parametrize(("name", "text", "message"), [
    ("empty.csv", "", "empty catalog"),
    ("noid.csv", "ID,NAME\n1,a\n", "no ITEM_ID column"),
    ("cols.csv", "ITEM_ID,NAME\n1,a\n", "lacks: image"),
    ("bad.jsonl", '{"itemId": "i1", "properties": "{"}\n', "line 1 is not a PutItems record"),
])
def test_unreadable_catalogs_say_why(tmp_path, name, text, message):
    with pytest.raises(CatalogError, match=message):
        load_catalog(write(tmp_path, name, text), ["NAME", "IMAGE"] if name == "cols.csv" else [])
