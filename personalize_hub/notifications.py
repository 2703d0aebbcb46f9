"""The `notifications:` config section: which lifecycle events go to which signed webhooks (sent by workers/notifications.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.destinations.webhook import WebhookConfig
from connectors.formats.lifecycle import EVENTS


class NotificationsConfig(BaseModel):
    """Where lifecycle events go (import finished, version trained, gate passed or failed, campaign updated, ...)."""

    model_config = ConfigDict(extra="forbid")

    webhooks: list[WebhookConfig] = Field(
        default_factory=list, description="Standard Webhooks receivers (the `webhook` destination's fields).")
    events: list[str] = Field(list(EVENTS), description=f"Which events to send: {', '.join(EVENTS)}.")

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str]) -> list[str]:
        unknown = sorted(set(events) - set(EVENTS))
        if unknown:
            raise ValueError(f"unknown lifecycle events {', '.join(unknown)}; known: {', '.join(EVENTS)}")
        return events
