"""Declarative mapping from decoded events to Personalize records: config in, records out, no DSL.

`config` is the `mapping:` section, `defaults` the Segment E-commerce Spec v2 / mParticle tables,
`paths` the dotted field paths, `fields` the allow-listed properties, `mapper` the mapping itself
(used by the Personalize encoder, encoder.py).
"""

from connectors.destinations.personalize.mapping.config import InteractionRule, MappingConfig
from connectors.destinations.personalize.mapping.mapper import Mapper

__all__ = ["InteractionRule", "Mapper", "MappingConfig"]
