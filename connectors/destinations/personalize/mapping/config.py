"""The `mapping:` config section: which events become interactions, items and users, and where fields come from.

Field descriptions are the user documentation. Every path is `scope.key…` (mapping/paths.py); a list
of paths is tried in order and the first present value wins (`product.product_id`, then `product.sku`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from connectors.destinations.personalize.mapping import defaults
from connectors.destinations.personalize.mapping.paths import compile_path


def _check_paths(paths: list[str]) -> list[str]:
    for path in paths:
        compile_path(path)  # ValueError → a config error naming the path
    return paths


Paths = Annotated[list[str], AfterValidator(_check_paths)]
PropertyPaths = dict[str, Paths]
"""Schema field name (UPPER_SNAKE) → paths; sent in `properties` under the field's camelCase key."""


class InteractionRule(BaseModel):
    """How one allow-listed event becomes interactions."""

    model_config = ConfigDict(extra="forbid")

    event_type: str | None = Field(
        None, min_length=1, max_length=256, description="eventType sent to Personalize; default: the event name."
    )
    per_product: bool = Field(
        False, description="One interaction per entry of properties.products (Order Completed, mParticle actions)."
    )


class InteractionsMapping(BaseModel):
    """Interactions (PutEvents): the allow-list of events and the paths of each Event member."""

    model_config = ConfigDict(extra="forbid")

    events: dict[str, InteractionRule | None] = Field(
        default_factory=defaults.interaction_events,
        validate_default=True,
        description="Allow-list: event name → rule (empty = defaults). Other events are skipped and counted.",
    )
    event_calls: list[str] = Field(
        defaults.EVENT_CALLS, description="Calls whose event name is looked up in `events` (not page/screen)."
    )
    call_event_types: dict[str, str] = Field(
        {}, description='Calls that are interactions whatever their name, with this eventType, e.g. {page: "Page Viewed"}.'
    )
    item_id: Paths = Field(defaults.ITEM_ID_PATHS, description="Where the itemId is; a missing one is rejected.")
    event_value: Paths = Field(defaults.EVENT_VALUE_PATHS, description="Where eventValue (a number) is.")
    impression: Paths = Field(defaults.IMPRESSION_PATHS, description="Where an explicit impression list is.")
    recommendation_id: Paths = Field(defaults.RECOMMENDATION_ID_PATHS, description="Where recommendationId is.")
    event_attribution_source: Paths = Field(
        [], description="Where metricAttribution.eventAttributionSource is (none by default)."
    )
    list_view_events: list[str] = Field(
        defaults.LIST_VIEW_EVENTS,
        description="Events listing the products a user was shown; the next interaction in the session with "
        "one of them gets them as its impression (and the list's recommendationId).",
    )
    properties: PropertyPaths | None = Field(
        None, description="FIELD → paths kept in properties; default: every metadata field of the schema."
    )
    max_list_sessions: int = Field(
        100_000, ge=0, description="Sessions whose last product list is remembered for impressions (LRU)."
    )


class ItemsMapping(BaseModel):
    """Catalog changes (PutItems): upserts, and removals as a flag filters can exclude."""

    model_config = ConfigDict(extra="forbid")

    upsert_events: list[str] = Field(defaults.ITEM_UPSERT_EVENTS, description="Track events that upsert an item.")
    removal_events: list[str] = Field(
        defaults.ITEM_REMOVAL_EVENTS, description="Track events that remove an item (Personalize has no delete call)."
    )
    item_id: Paths = Field(defaults.CATALOG_ITEM_ID_PATHS, description="Where the itemId is.")
    properties: PropertyPaths | None = Field(
        None, description="FIELD → paths; default: every metadata field of the Items schema, else CATEGORY, BRAND, PRICE."
    )
    removal_field: str | None = Field(
        "AVAILABLE", description="Items schema field a removal sets, e.g. for a filter EXCLUDE … AVAILABLE IN (\"false\")."
    )
    removal_value: str = Field("false", description="Value of `removal_field` on a removal.")
    available_value: str | None = Field(
        "true", description="Value of `removal_field` on an upsert that does not set it (null: leave it out)."
    )


class UsersMapping(BaseModel):
    """Profiles (PutUsers) from identify traits and user records."""

    model_config = ConfigDict(extra="forbid")

    properties: PropertyPaths | None = Field(
        None, description="FIELD → paths (traits.*); default: every metadata field of the Users schema, "
        "else PLAN, AGE, GENDER."
    )


class MappingConfig(BaseModel):
    """Declarative mapping from decoded events to Personalize records (default: Segment E-commerce Spec v2)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Off only for a hub that forwards raw events (e.g. webhook → Kafka).")
    interactions: InteractionsMapping = Field(default_factory=InteractionsMapping, description="PutEvents.")
    items: ItemsMapping = Field(default_factory=ItemsMapping, description="PutItems.")
    users: UsersMapping = Field(default_factory=UsersMapping, description="PutUsers.")
