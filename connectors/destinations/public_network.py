"""SSRF guard for destinations sending to user-given URLs: only public addresses, checked on every connection."""

from __future__ import annotations

import errno
import ipaddress
import socket
from urllib.parse import unquote

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult


def non_public(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address when it is not a public one (loopback, private, link-local, CGNAT, unspecified, …)."""
    parsed = ipaddress.ip_address(address)
    mapped = getattr(parsed, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is 127.0.0.1
    return None if (mapped or parsed).is_global else parsed


def literal_address(host: str) -> str | None:
    """The host as an IP literal (a URL's `fe80::1%25eth0` scope decoded), or None for a name."""
    text = unquote(host).strip("[]")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return text


class PublicOnlyResolver(AbstractResolver):
    """Resolves through aiohttp's default resolver and refuses a name with any non-public address.

    The check runs when a connection is opened, not once at start: a name that did not resolve then,
    or whose DNS changed since (rebinding), cannot reach a private network later. aiohttp does not
    resolve IP literals, so those are checked where the URL is configured.
    """

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self.inner = inner or aiohttp.DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        for result in found:
            if (address := non_public(result["host"])) is not None:
                # errno + text: aiohttp quotes the strerror in its connection error, so the reason reaches the log.
                raise OSError(errno.EACCES, f"{host} resolves to {address}, not a public address; set "
                              "allow_private_networks to send there")
        return found

    async def close(self) -> None:
        await self.inner.close()


def refuse_private_literal(url_host: str) -> str | None:
    """A reason when the URL's host is a non-public IP literal; names are checked per connection."""
    literal = literal_address(url_host)
    if literal is not None and (address := non_public(literal)) is not None:
        return f"{url_host} is {address}, not a public address; set allow_private_networks to send there"
    return None
