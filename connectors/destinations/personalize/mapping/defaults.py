"""The default mapping: Segment's E-commerce Spec v2 and mParticle's commerce actions (what examples ship).

Segment: the product events become interactions whose eventType is the event name; Order Completed
carries its products in `properties.products`, one interaction each. mParticle: the decoder names a
commerce event after its product action and keeps Segment's product field names in `properties.products`
(connectors/formats/mparticle.py), so the same paths serve both dialects.
"""

from __future__ import annotations

SEGMENT_PRODUCT_EVENTS = (
    "Product Viewed", "Product Clicked", "Product Added", "Product Removed", "Product Added to Wishlist",
)
SEGMENT_ORDER_EVENTS = ("Order Completed",)
MPARTICLE_PRODUCT_ACTIONS = ("view_detail", "click", "add_to_cart", "remove_from_cart", "add_to_wishlist", "purchase")


def interaction_events() -> dict[str, dict[str, object]]:
    """Event name → rule; only these names become interactions (the allow-list)."""
    events: dict[str, dict[str, object]] = {name: {} for name in SEGMENT_PRODUCT_EVENTS}
    events.update({name: {"per_product": True} for name in SEGMENT_ORDER_EVENTS})
    events.update({name: {"per_product": True} for name in MPARTICLE_PRODUCT_ACTIONS})
    return events


# Calls whose event names are looked up in the allow-list; page/screen views are not interactions
# unless `call_event_types` says so.
EVENT_CALLS = ["track", "commerce_event", "custom_event"]

ITEM_ID_PATHS = ["product.product_id", "product.sku"]
EVENT_VALUE_PATHS = ["product.price"]
IMPRESSION_PATHS = ["properties.impression"]
RECOMMENDATION_ID_PATHS = ["properties.recommendation_id", "product.recommendation_id"]
# Segment's list view and mParticle's product impressions: their products are what the user was shown.
LIST_VIEW_EVENTS = ["Product List Viewed", "impression"]

ITEM_UPSERT_EVENTS = ["Product Updated", "Product Created"]
ITEM_REMOVAL_EVENTS = ["Product Deleted"]
# Catalog records from a Kafka topic may name the id in their own way; Segment's names come first.
CATALOG_ITEM_ID_PATHS = [
    "product.product_id", "product.sku", "product.item_id", "product.itemId", "product.ITEM_ID", "product.id",
]

# Allow-lists used only when neither the config nor a dataset schema says which fields exist; they
# match the example schemas in examples/schemas/.
ITEM_PROPERTIES = {"CATEGORY": ["product.category"], "BRAND": ["product.brand"], "PRICE": ["product.price"]}
USER_PROPERTIES = {"PLAN": ["traits.plan"], "AGE": ["traits.age"], "GENDER": ["traits.gender"]}
