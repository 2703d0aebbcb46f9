"""The one place AWS clients are built: region, endpoint override, botocore retries off, standard credentials."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # aiobotocore and aiohttp are imported on first use: `hub --help` should not pay for them
    import aiohttp
    from aiobotocore.session import AioSession
    from botocore.config import Config

    from connectors.http1 import Http1Pool

log = logging.getLogger(__name__)

PERSONALIZE_SERVICES = frozenset({"personalize", "personalize-events", "personalize-runtime"})
# Hosts of real AWS endpoints (docs.aws.amazon.com/general/latest/gr/rande.html); any other
# personalize_endpoint_url is a local engine such as local_personalize, which checks no signature.
AWS_DOMAINS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")
# What a local engine is signed with when the standard chain has nothing: botocore refuses to send an
# unsigned request ("Unable to locate credentials") even to an engine that ignores the signature.
LOCAL_ENGINE_CREDENTIALS = ("local-engine", "local-engine-secret")


class ProxyRoute(NamedTuple):
    """The proxy for one URL and the headers carrying its credentials (aiohttp's `proxy=`, `proxy_headers=`)."""

    url: str | None
    headers: dict[str, str] | None

# The DestinationRunner is the one retry owner (docs/architecture.md): one attempt per call,
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
        self._client_lock = asyncio.Lock()  # two first callers must not build two clients (one would leak)
        self._exit_stack = contextlib.AsyncExitStack()
        self._told_local_credentials = False
        self._credentials: Any = None
        self._http: aiohttp.ClientSession | None = None
        self._pools: dict[str, Http1Pool] = {}

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

    @property
    def uses_local_engine(self) -> bool:
        """personalize_endpoint_url names something other than AWS (local_personalize or another stand-in)."""
        if self.personalize_endpoint_url is None:
            return False
        host = (urlsplit(self.personalize_endpoint_url).hostname or "").lower()
        return not host.endswith(AWS_DOMAINS)

    def _may_need_local(self, service: str) -> bool:
        # Only then is the chain resolved up front; elsewhere botocore resolves it on the first request.
        return service in PERSONALIZE_SERVICES and self.uses_local_engine

    def _local_credentials(self, service: str, chain_has_credentials: bool) -> dict[str, str]:
        """Client keyword arguments for dummy credentials: only for a local engine and an empty chain."""
        if chain_has_credentials or service not in PERSONALIZE_SERVICES or not self.uses_local_engine:
            return {}
        self._say_local_credentials()
        key, secret = LOCAL_ENGINE_CREDENTIALS
        return {"aws_access_key_id": key, "aws_secret_access_key": secret}

    def _say_local_credentials(self) -> None:
        if not self._told_local_credentials:
            self._told_local_credentials = True
            log.info("no AWS credentials found; signing requests to the local engine %s with dummy ones "
                     "(set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile to use real ones)",
                     self.personalize_endpoint_url)

    def create_client(self, service: str, **credentials: str) -> Any:
        """An aiobotocore client context manager the caller owns (`async with aws.create_client(...) as c`)."""
        return self.session.create_client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url_for(service),
            config=self.client_config(),
            **credentials,
        )

    async def client(self, service: str) -> Any:
        """The shared aiobotocore client for `service`, opened on first use and closed by `close()`."""
        client = self._clients.get(service)
        if client is not None:
            return client
        async with self._client_lock:
            client = self._clients.get(service)
            if client is None:
                chain = await self.session.get_credentials() if self._may_need_local(service) else True
                credentials = self._local_credentials(service, chain is not None)
                client = await self._exit_stack.enter_async_context(self.create_client(service, **credentials))
                self._clients[service] = client
        return client

    def sync_client(self, service: str, **overrides: Any) -> Any:
        """A plain botocore client with the same settings, for synchronous code (CLI, Celery tasks)."""
        import botocore.session

        session = botocore.session.get_session()
        chain = session.get_credentials() if self._may_need_local(service) else True
        return session.create_client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url_for(service),
            config=self.client_config(**overrides),
            **self._local_credentials(service, chain is not None),
        )

    async def frozen_credentials(self) -> Any:
        """Current credentials (access key, secret, token) from the chain; refreshable ones renew here.

        They sign Personalize requests (the lean PutEvents path). With a local engine and an empty chain
        they are the dummy ones; otherwise an empty chain raises botocore's NoCredentialsError.
        """
        if self._credentials is None:
            credentials = await self.session.get_credentials()
            if credentials is None:
                from aiobotocore.credentials import AioCredentials
                from botocore.exceptions import NoCredentialsError

                if not self._local_credentials("personalize-events", False):
                    raise NoCredentialsError()
                credentials = AioCredentials(*LOCAL_ENGINE_CREDENTIALS, method="local-engine")
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

    def http1_pool(self, origin: str) -> Http1Pool:
        """Keep-alive HTTP/1.1 connections to `origin` for hand-built signed requests without a proxy (the lean
        PutEvents path): a fraction of aiohttp's CPU per call (connectors/http1.py)."""
        pool = self._pools.get(origin)
        if pool is None:
            from connectors.http1 import Http1Pool

            pool = self._pools[origin] = Http1Pool(origin, limit=MAX_POOL_CONNECTIONS,
                                                   connect_timeout_secs=CONNECT_TIMEOUT_SECS,
                                                   read_timeout_secs=READ_TIMEOUT_SECS)
        return pool

    def proxy_for(self, url: str) -> ProxyRoute:
        """The HTTP(S)_PROXY that applies to `url` per the environment (NO_PROXY honoured), as botocore uses.

        aiohttp strips `user:password@` from the proxy URL into a separate BasicAuth: it is returned as
        the Proxy-Authorization header, or an authenticated proxy answers 407 to every request.
        """
        from aiohttp.helpers import get_env_proxy_for_url
        from yarl import URL

        try:
            proxy, auth = get_env_proxy_for_url(URL(url))
        except LookupError:
            return ProxyRoute(None, None)
        return ProxyRoute(str(proxy), {"Proxy-Authorization": auth.encode()} if auth else None)

    async def close(self) -> None:
        await self._exit_stack.aclose()
        self._exit_stack = contextlib.AsyncExitStack()
        self._clients.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None
        for pool in self._pools.values():
            await pool.close()
        self._pools.clear()
