"""personalize-hub: clickstream and catalog into Amazon Personalize, recommendations out to marketing."""

__version__ = "0.1.0"
