"""Where webhooks may be delivered: public addresses only, unless the operator allows
private ones (development, a receiver on the same host).

A merchant chooses the URL, so without this guard the engine would POST wherever a
merchant points it — its own loopback services, the cloud metadata address, the office
LAN (server-side request forgery). The check runs at connect time on the resolved
addresses (a DNS name that later resolves to a private address is refused too), and on
IP literals before connecting.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class TargetNotAllowed(OSError):
    pass


def is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return ip.is_global and not ip.is_multicast


def check_literal(host: str) -> None:
    """Refuse a non-public IP literal (names are checked by :class:`GuardedResolver`)."""
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return  # a name
    if not is_public(host.strip("[]")):
        raise TargetNotAllowed(f"webhook target {host} is not a public address")


class GuardedResolver(AbstractResolver):
    """DNS through aiohttp's default resolver, keeping public addresses only."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [r for r in found if is_public(str(r["host"]))]
        if not public:
            raise TargetNotAllowed(f"webhook target {host} resolves to no public address")
        return public

    async def close(self) -> None:
        await self._inner.close()


def connector(allow_private: bool) -> Any:
    """The aiohttp connector for webhook deliveries."""
    import aiohttp

    if allow_private:
        return aiohttp.TCPConnector()
    return aiohttp.TCPConnector(resolver=GuardedResolver())
