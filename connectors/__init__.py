"""Vendor code: the one explicit list of built-in connectors (sources and destinations)."""

from connectors.destinations.file import FileDestination
from connectors.destinations.kafka_topic import KafkaTopic
from connectors.destinations.personalize.events import PersonalizeEvents
from connectors.destinations.personalize.items import PersonalizeItems
from connectors.destinations.personalize.users import PersonalizeUsers
from connectors.sources.kafka import KafkaSource
from connectors.sources.mparticle_webhook import MparticleWebhook
from connectors.sources.segment_webhook import SegmentWebhook

CATALOGUE = [
    SegmentWebhook,
    MparticleWebhook,
    KafkaSource,
    KafkaTopic,
    FileDestination,
    PersonalizeEvents,
    PersonalizeItems,
    PersonalizeUsers,
]
