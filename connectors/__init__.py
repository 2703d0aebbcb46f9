"""Vendor code: the one explicit list of built-in connectors (sources and destinations)."""

from connectors.destinations.file import FileDestination
from connectors.sources.segment_webhook import SegmentWebhook

CATALOGUE = [
    SegmentWebhook,
    FileDestination,
]
