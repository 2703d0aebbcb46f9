"""The one place AWS clients are built: region, endpoint override, botocore retries off, standard credentials."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # aiobotocore and aiohttp are imported on first use: `hub --help` should not pay for them
    import aiohttp
    from aiobotocore.session import AioSession
    from botocore.config import Config

PERSONALIZE_SERVICES = frozenset({"personalize", "personalize-events", "personalize-runtime"})

# The DestinationRunner is the one retry owner (ARCHITECTURE.md "One retry owner"): one attempt per call,
# so a throttled call is backed off and rate-adapted once, not retried three times inside botocore first.
BOTOCORE_RETRIES = {"mode": "standard", "total_max_attempts": 1}
CONNECT_TIMEOUT_SECS = 10.0
READ_TIMEOUT_SECS = 30.0
# Keep-alive connections per client: covers every runner's max_in_flight (PutEvents allows 64, events.py).
MAX_POOL_CONNECTIONS = 128


class AwsConfig(BaseModel):
    """The `aws:` config section: how AwsClients are built; credentials come from the AWS chain, never config."""

    model_config = ConfigDict(extra="forbid")

    region: str = Field("us-east-1", description="AWS region.")
    personalize_endpoint_url: str | None = Field(
        None, description="Personalize endpoint override, e.g. local_personalize; empty means real AWS."
    )
    endpoint_url: str | None = Field(None, description="Endpoint override for other services (S3, SES).")


class AwsClients:
    """Builds and owns the AWS clients of one hub process; `close()` releases all of them.

    Credentials come only from botocore's standard chain (env, shared files, SSO, container/instance
    roles), never from hub config. Personalize services use `personalize_endpoint_url` (e.g.
    local_personalize), every other service `endpoint_url`; unset means botocore's own resolution.
    Nothing touches the network until a client or credentials are first asked for.
    """

    def __init__(self, config: AwsConfig | None = None, *, session: AioSession | None = None):
        self.region = config.region if config else "us-east-1"
        # Empty strings count as unset: examples interpolate `${PERSONALIZE_ENDPOINT_URL:-}` (empty = real AWS).
        self.personalize_endpoint_url = (config.personalize_endpoint_url if config else None) or None
        self.endpoint_url = (config.endpoint_url if config else None) or None
        self._session = session
        self._clients: dict[str, Any] = {}
        self._exit_stack = contextlib.AsyncExitStack()
        self._credentials: Any = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def session(self) -> AioSession:
        if self._session is None:
            from aiobotocore.session import get_session

            self._session = get_session()
        return self._session

    def endpoint_url_for(self, service: str) -> str | None:
        """The endpoint override for `service`, or None to let botocore resolve it (AWS, AWS_ENDPOINT_URL_*)."""
        return self.personalize_endpoint_url if service in PERSONALIZE_SERVICES else self.endpoint_url

    def client_config(self, **overrides: Any) -> Config:
        """botocore client settings: retries off, bounded timeouts, a pool sized for the runners."""
        from botocore.config import Config

        settings: dict[str, Any] = {
            "retries": dict(BOTOCORE_RETRIES),
            "connect_timeout": CONNECT_TIMEOUT_SECS,
            "read_timeout": READ_TIMEOUT_SECS,
            "max_pool_connections": MAX_POOL_CONNECTIONS,
        }
        settings.update(overrides)
        return Config(**settings)

    def create_client(self, service: str, **overrides: Any) -> Any:
        """An aiobotocore client context manager the caller owns (`async with aws.create_client(...) as c`)."""
        return self.session.create_client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url_for(service),
            config=self.client_config(**overrides),
        )

    async def client(self, service: str) -> Any:
        """The shared aiobotocore client for `service`, opened on first use and closed by `close()`."""
        client = self._clients.get(service)
        if client is None:
            client = await self._exit_stack.enter_async_context(self.create_client(service))
            self._clients[service] = client
        return client

    def sync_client(self, service: str, **overrides: Any) -> Any:
        """A plain botocore client with the same settings, for synchronous code (CLI, Celery tasks)."""
        import botocore.session

        return botocore.session.get_session().create_client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url_for(service),
            config=self.client_config(**overrides),
        )

    async def frozen_credentials(self) -> Any:
        """Current credentials (access key, secret, token) from the chain; refreshable ones renew here.

        Raises botocore's NoCredentialsError when the chain finds nothing.
        """
        if self._credentials is None:
            credentials = await self.session.get_credentials()
            if credentials is None:
                from botocore.exceptions import NoCredentialsError

                raise NoCredentialsError()
            self._credentials = credentials
        return await self._credentials.get_frozen_credentials()

    def http_session(self) -> aiohttp.ClientSession:
        """A pooled keep-alive HTTP client for hand-built signed requests (the lean PutEvents path)."""
        if self._http is None or self._http.closed:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=MAX_POOL_CONNECTIONS, keepalive_timeout=30)
            self._http = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(connect=CONNECT_TIMEOUT_SECS, sock_read=READ_TIMEOUT_SECS),
                # trust_env would cost two thread hops per request (proxy and .netrc lookups), and a
                # .netrc entry would add a Basic Authorization: proxies are resolved once (proxy_for).
                trust_env=False,
            )
        return self._http

    def proxy_for(self, url: str) -> str | None:
        """The HTTP(S)_PROXY that applies to `url` per the environment (NO_PROXY honoured), as botocore uses."""
        from aiohttp.helpers import get_env_proxy_for_url
        from yarl import URL

        try:
            proxy, _ = get_env_proxy_for_url(URL(url))
        except LookupError:
            return None
        return str(proxy)

    async def close(self) -> None:
        await self._exit_stack.aclose()
        self._exit_stack = contextlib.AsyncExitStack()
        self._clients.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None
