"""Property tests: whatever JSON a source sends, mapping and validation answer records or a Rejection, never raise."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.destinations.personalize.mapping import Mapper
from connectors.destinations.personalize.schema import INTERACTIONS, ITEMS, USERS, load_schema
from connectors.destinations.personalize.validation import RecordRules
from hub.events import Event, EventKind, Rejection, SourceRef

SCHEMAS = Path(__file__).parents[4] / "tests" / "data" / "schemas"
SCHEMA_SETS = [{}, {t: load_schema(SCHEMAS / f"{t.lower()}.avsc", t) for t in (INTERACTIONS, ITEMS, USERS)}]
STAGES = [(Mapper(schemas=s), RecordRules(s)) for s in SCHEMA_SETS]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=20)
keys = st.sampled_from(["product_id", "sku", "price", "products", "impression", "recommendation_id", "category",
                        "genres", "device_type", "discount", "number_of_ratings", "creation_timestamp", "plan",
                        "age", "item_id", "id"]) | st.text(max_size=12)
properties = st.dictionaries(keys, json_values, max_size=8)
products = st.dictionaries(st.just("products"), st.lists(st.dictionaries(keys, json_values, max_size=5) | json_values,
                                                         max_size=4))
names = st.sampled_from(["Product Viewed", "Order Completed", "Product List Viewed", "Product Updated",
                         "Product Deleted", "purchase", "impression", "Unknown"]) | st.none() | st.text(max_size=10)
kinds = st.sampled_from(list(EventKind))
ids = st.none() | st.sampled_from(["u1", "null", "", "x" * 300]) | st.text(max_size=8)


@settings(max_examples=200, deadline=None)
@given(name=names, kind=kinds, props=properties | products, traits=properties, user=ids, session=ids,
       call=st.sampled_from(["track", "commerce_event", "page", "identify", None]), which=st.sampled_from([0, 1]))
def test_mapping_then_validation_never_raise(name, kind, props, traits, user, session, call, which):
    mapping, validation = STAGES[which]
    event = Event(kind=kind, source=SourceRef(source_id="fuzz", message_id="m"), timestamp=1_700_000_000.0,
                  name=name, call=call, user_id=user, session_id=session, properties=props, traits=traits)
    result = mapping.map(event)
    if isinstance(result, Rejection):
        assert result.reason and result.message
        return
    for child in result:
        if isinstance(child, Rejection):
            assert child.reason and child.message
            continue
        checked = validation.check(child)
        if isinstance(checked, Rejection):
            assert checked.reason and checked.message
            continue
        (final,) = checked
        if final.kind is not EventKind.INTERACTION or "properties" in final.record:
            assert isinstance(final.record["properties"], str)  # the wire form, JSON text
