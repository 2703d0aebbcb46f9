"""The default mapping: the paths and allow-lists that read Segment's and mParticle's commerce events.

The event names themselves live with their formats (connectors/formats/segment.py, mparticle.py).

Segment: the product events become interactions whose eventType is the event name; Order Completed
carries its products in `properties.products`, one interaction each. mParticle: the decoder names a
commerce event after its product action and keeps Segment's product field names in `properties.products`
(connectors/formats/mparticle.py), so the same paths serve both dialects.
"""

from __future__ import annotations

from connectors.formats import mparticle, segment


def interaction_events() -> dict[str, dict[str, object]]:
    """Event name → rule; only these names become interactions (the allow-list)."""
    events: dict[str, dict[str, object]] = {name: {} for name in segment.PRODUCT_EVENTS}
    events.update({name: {"per_product": True} for name in segment.ORDER_EVENTS})
    events.update({name: {"per_product": True} for name in mparticle.PRODUCT_ACTIONS})
    return events


# Calls whose event names are looked up in the allow-list; page/screen views are not interactions
# unless `call_event_types` says so.
EVENT_CALLS = ["track", "commerce_event", "custom_event"]

ITEM_ID_PATHS = ["product.product_id", "product.sku"]
EVENT_VALUE_PATHS = ["product.price"]
IMPRESSION_PATHS = ["properties.impression"]
RECOMMENDATION_ID_PATHS = ["properties.recommendation_id", "product.recommendation_id"]
# Segment's list view and mParticle's product impressions: their products are what the user was shown.
LIST_VIEW_EVENTS = [segment.PRODUCT_LIST_VIEWED, mparticle.IMPRESSION_EVENT]

ITEM_UPSERT_EVENTS = list(segment.CATALOG_UPSERT_EVENTS)
ITEM_REMOVAL_EVENTS = list(segment.CATALOG_REMOVAL_EVENTS)
# Catalog records from a Kafka topic may name the id in their own way; Segment's names come first.
CATALOG_ITEM_ID_PATHS = [
    "product.product_id", "product.sku", "product.item_id", "product.itemId", "product.ITEM_ID", "product.id",
]

# Allow-lists used only when neither the config nor a dataset schema says which fields exist; they
# match the example schemas in examples/schemas/.
ITEM_PROPERTIES = {"CATEGORY": ["product.category"], "BRAND": ["product.brand"], "PRICE": ["product.price"]}
USER_PROPERTIES = {"PLAN": ["traits.plan"], "AGE": ["traits.age"], "GENDER": ["traits.gender"]}
