"""Domain dataset groups (ECOMMERCE, VIDEO_ON_DEMAND): the fields each domain's schemas must carry.

Sources: https://docs.aws.amazon.com/personalize/latest/dg/ECOMMERCE-datasets-and-schemas.html and
https://docs.aws.amazon.com/personalize/latest/dg/VIDEO_ON_DEMAND-datasets-and-schemas.html: every
domain Interactions schema has EVENT_TYPE; ECOMMERCE Items need PRICE (float) and CATEGORY_L1
(categorical string); VIDEO_ON_DEMAND Items need GENRES (categorical string); domain Users schemas
need one metadata field besides USER_ID, as custom ones do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from local_personalize.errors import InvalidInput

if TYPE_CHECKING:
    from local_personalize.schemas import DatasetSchema

DOMAINS = ("ECOMMERCE", "VIDEO_ON_DEMAND")
# (domain, dataset type) → field → (allowed Avro types, must be categorical)
DOMAIN_FIELDS: dict[tuple[str, str], dict[str, tuple[frozenset[str], bool]]] = {
    ("ECOMMERCE", "INTERACTIONS"): {"EVENT_TYPE": (frozenset({"string"}), False)},
    ("VIDEO_ON_DEMAND", "INTERACTIONS"): {"EVENT_TYPE": (frozenset({"string"}), False)},
    ("ECOMMERCE", "ITEMS"): {"PRICE": (frozenset({"float", "double"}), False),
                             "CATEGORY_L1": (frozenset({"string"}), True)},
    ("VIDEO_ON_DEMAND", "ITEMS"): {"GENRES": (frozenset({"string"}), True)},
}
# Dataset types a domain dataset group can hold (actions belong to custom groups only).
DOMAIN_DATASET_TYPES = frozenset({"INTERACTIONS", "ITEMS", "USERS"})


def check_domain_schema(schema: DatasetSchema, dataset_type: str, domain: str) -> None:
    """InvalidInput naming the field when `schema` misses what `domain` requires for `dataset_type`."""
    if domain not in DOMAINS:
        raise InvalidInput(f"domain must be one of {', '.join(DOMAINS)}, not {domain!r}")
    if dataset_type not in DOMAIN_DATASET_TYPES:
        raise InvalidInput(f"{domain} dataset groups have no {dataset_type} dataset")
    for name, (types, categorical) in DOMAIN_FIELDS.get((domain, dataset_type), {}).items():
        field = schema.field(name)
        if field is None:
            raise InvalidInput(f"{domain} {dataset_type} schemas must have a {name} field")
        if not field.types <= types:
            raise InvalidInput(f"{name} must be {'/'.join(sorted(types))} in {domain} schemas")
        if categorical and not field.categorical:
            raise InvalidInput(f"{name} must be categorical in {domain} schemas")
