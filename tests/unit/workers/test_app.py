"""The Celery app's start-up check: a broker that is not Redis is refused, without echoing its credentials."""

from __future__ import annotations

import pytest

from hub.errors import ConfigError
from workers import app as celery_app


def test_a_non_redis_broker_is_refused_without_its_password(monkeypatch):
    monkeypatch.setitem(celery_app.app.conf, "broker_url", "amqp://hub:s3cret-pw@mq.internal:5672//")
    with pytest.raises(ConfigError) as raised:
        celery_app._require_config()
    assert "amqp" in str(raised.value)
    assert "s3cret-pw" not in str(raised.value)


def test_a_redis_broker_passes(monkeypatch):
    monkeypatch.setitem(celery_app.app.conf, "broker_url", "redis://:s3cret-pw@127.0.0.1:6379/0")
    celery_app._require_config()
