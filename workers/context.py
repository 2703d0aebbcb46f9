"""What worker tasks share: the hub config ($HUB_CONFIG, or set by the CLI), job lookup, Redis and AWS clients."""

from __future__ import annotations

import functools
import os
from importlib.metadata import entry_points
from typing import Any

import redis
import redis.asyncio

from hub import redis_connection
from hub.errors import ConfigError, HubError
from workers.config import BatchJobConfig

CONFIG_ENV = "HUB_CONFIG"
APPLICATION_ENTRY_POINT = ("personalize_hub.workers", "application")  # (group, name)

_config: Any = None
_redis: redis.Redis | None = None


class UnknownJob(HubError):
    """A task or command named a job the config does not declare."""


def set_config(config: Any) -> None:
    """Use this config in this process (the CLI, tests, the eager driver) instead of reading $HUB_CONFIG."""
    global _config, _redis
    _config, _redis = config, None
    _sync_client.cache_clear()


def hub_config() -> Any:
    """The hub config: set by `set_config`, else loaded once from the file named by $HUB_CONFIG."""
    global _config
    if _config is None:
        path = os.environ.get(CONFIG_ENV)
        if not path:
            raise ConfigError([f"{CONFIG_ENV} is not set: workers read the hub config file it names"])
        _config = application().load_config(path)
    return _config


@functools.cache
def application() -> Any:
    """What workers use of the application above them: `load_config(path)` and `build_destination(config,
    context)` (personalize_hub/workers_host.py).

    Found through the entry point the application declares (pyproject.toml), so that this layer imports
    nothing above it although `celery -A workers.app worker` starts here.
    """
    found = entry_points(group=APPLICATION_ENTRY_POINT[0], name=APPLICATION_ENTRY_POINT[1])
    if not found:
        raise ConfigError([f"no {'/'.join(APPLICATION_ENTRY_POINT)} entry point: install the hub (pip install .)"])
    return next(iter(found)).load()


def job_config(name: str) -> BatchJobConfig:
    for job in hub_config().jobs:
        if job.name == name:
            return job
    known = ", ".join(job.name for job in hub_config().jobs) or "none"
    raise UnknownJob(f"no job named {name!r} in the config (jobs: {known})")


def redis_url() -> str:
    url = hub_config().workers.redis_url
    if not url:
        raise ConfigError(["workers.redis_url: jobs need Redis (broker, ledger, reports)"])
    return url


def sync_redis() -> redis.Redis:
    """One pooled client per process for the synchronous steps."""
    global _redis
    if _redis is None:
        _redis = redis_connection.sync_client(redis_url())
    return _redis


def async_redis() -> redis.asyncio.Redis:
    """A client for one event loop (the export slice owns and closes it): asyncio clients are per loop."""
    return redis_connection.async_client(redis_url())


def aws_clients() -> Any:
    """AWS clients built the one way the hub builds them (connectors/aws.py)."""
    from connectors.aws import AwsClients

    return AwsClients(hub_config().aws)


@functools.cache
def _sync_client(service: str, region: str, personalize_url: str | None, endpoint_url: str | None) -> Any:
    return aws_clients().sync_client(service)


def sync_client(service: str) -> Any:
    """A cached botocore client for synchronous steps (control plane, S3 input and catalog)."""
    aws = hub_config().aws
    return _sync_client(service, aws.region, aws.personalize_endpoint_url, aws.endpoint_url)
