"""Where the vault may send card data: the ``vault.gateway_hosts`` allowlist.

A forwarding call may name the PG account to use (:class:`~vault.forwarding.Route`),
base URL included. The engine is the one naming it, so an engine taken over could
point a route at a host of its own and have the vault post decrypted cards there. The
vault therefore forwards only to hosts on its own list (its settings, not the
engine's), and never over plain ``http://`` to a host that is not loopback (the sandbox
PG on 127.0.0.1 is the only plain-HTTP PG). :func:`check_route` runs before anything is
decrypted; the caller audits a refusal.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Final

from vault.errors import GatewayHostRefused
from vault.forwarding import Route

DEFAULT_GATEWAY_HOSTS: Final = ("127.0.0.1", "localhost", "api.iamport.kr", "api.portone.io")
_HOST_RE: Final = re.compile(r"[a-z0-9]([a-z0-9.:-]{0,251}[a-z0-9])?")
_UNSAFE: Final = re.compile(r"[^a-z0-9.:-]")


def normalize_host(host: str) -> str:
    """Lower case, no trailing dot, IPv6 brackets dropped."""
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def check_host_name(host: str) -> str:
    """A ``vault.gateway_hosts`` entry, normalized; ``ValueError`` if it is not a host
    name or an IP address (a URL, a pattern, a port)."""
    name = normalize_host(host)
    if not _HOST_RE.fullmatch(name) or "://" in host or "*" in host:
        raise ValueError("vault.gateway_hosts entries are host names or IP addresses")
    return name


def is_loopback(host: str) -> bool:
    name = normalize_host(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def audit_host(host: str) -> str:
    """The host as it may be written to the audit log: safe characters, bounded."""
    return _UNSAFE.sub("?", normalize_host(host))[:64] or "?"


def check_route(route: Route, allowed: Iterable[str]) -> None:
    """Raise :class:`GatewayHostRefused` unless ``route`` may receive card data: its host
    is on ``allowed`` (exactly, case-insensitively) and, unless loopback, it is HTTPS.
    The message names the rule, never the host or anything of the connection."""
    host = normalize_host(route.host)
    if host not in {normalize_host(h) for h in allowed}:
        raise GatewayHostRefused("the route's host is not in vault.gateway_hosts")
    if route.scheme != "https" and not is_loopback(host):
        raise GatewayHostRefused("plain http is allowed to loopback hosts only")
