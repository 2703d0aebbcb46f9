"""Vendor code: the one explicit list of built-in connectors (sources and destinations)."""

from connectors.destinations.braze import BrazeUsers
from connectors.destinations.email import Email
from connectors.destinations.file import FileDestination
from connectors.destinations.kafka_topic import KafkaTopic
from connectors.destinations.mparticle_profile import MparticleProfile
from connectors.destinations.personalize.events import PersonalizeEvents
from connectors.destinations.personalize.items import PersonalizeItems
from connectors.destinations.personalize.users import PersonalizeUsers
from connectors.destinations.recommendation_store import RecommendationStore
from connectors.destinations.s3 import S3Export
from connectors.destinations.segment_profile import SegmentProfile
from connectors.destinations.webhook import Webhook
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
    BrazeUsers,
    Email,
    SegmentProfile,
    MparticleProfile,
    Webhook,
    S3Export,
    RecommendationStore,
]
