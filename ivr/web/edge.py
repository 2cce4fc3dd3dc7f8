"""How a request reached the app, and the limits applied before any handler runs.

* **Proxies.** ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from
  ``api.trusted_proxies`` (uvicorn's own :class:`ProxyHeadersMiddleware`, applied here
  so tests and the served app behave alike; uvicorn's built-in copy is switched off in
  :func:`ivr.api.app.serve`). After it, ``request.client`` is the real client and
  ``request.url.scheme`` is ``https`` when the client spoke TLS to the proxy.
* **TLS-only cookies and HSTS** (``console.secure_cookies``): :func:`secure_transport`
  says whether an answer gets ``Strict-Transport-Security``, :func:`secure_cookies`
  whether its cookies are ``Secure``.
* **Body size** (:class:`BodyLimit`): a request whose ``Content-Length`` is over the
  limit is answered ``413`` at once, its body never read; one without a length
  (chunked) is read up to the limit and no further. ``api.max_upload_bytes`` for bulk
  submissions, ``api.max_body_bytes`` for everything else.
* **Where from** (:func:`source_of`): the client address the 401 limiter counts, an
  IPv6 address by its /64 (one host owns a whole /64).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from typing import Literal

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ivr.web.problems import Problem

HSTS = "max-age=31536000; includeSubDomains"
SecureCookies = Literal["auto", "always", "never"]
UPLOAD_PATHS = frozenset({"/v1/bulk-jobs", "/v1/bulk-jobs/upload", "/console/bulk"})


def trusted_hosts(setting: str) -> list[str]:
    """``api.trusted_proxies`` as uvicorn's middleware takes it."""
    return [item.strip() for item in setting.split(",") if item.strip()]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secure_transport(request: Request, mode: SecureCookies) -> bool:
    """HSTS: ``always``, or ``auto`` and the request came over TLS."""
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def secure_cookies(request: Request, mode: SecureCookies, listen_host: str) -> bool:
    """``Secure`` cookies: as :func:`secure_transport`, and in ``auto`` also whenever
    the engine listens beyond loopback (outside development a session cookie must
    never travel over plain HTTP)."""
    if secure_transport(request, mode):
        return True
    return mode == "auto" and not _loopback(listen_host)


def source_of(request: Request) -> str:
    """The client's address as the 401 limiter counts it (IPv6 by /64)."""
    host = request.client.host if request.client else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class BodyLimit:
    """ASGI middleware: 413 problem+json for bodies over the limit, without reading
    them (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_upload_bytes: int,
        upload_paths: Collection[str] = UPLOAD_PATHS,
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_upload = max_upload_bytes
        self.upload_paths = frozenset(upload_paths)

    def limit_for(self, scope: Scope) -> tuple[int, str]:
        if scope["path"] in self.upload_paths:
            return self.max_upload, "api.max_upload_bytes"
        return self.max_body, "api.max_body_bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.limit_for(scope)
        length = _content_length(scope)
        if length is not None:
            if length > limit:
                await _too_large(scope, send, limit, setting)
                return
            await self.app(scope, receive, send)
            return
        # No length (chunked, or none at all): read up to the limit, then replay.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away: the app sees the disconnect
            size += len(message.get("body", b""))
            if size > limit:
                await _too_large(scope, send, limit, setting)
                return
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def buffered() -> Message:
            try:
                return next(replay)
            except StopIteration:
                return await receive()

        await self.app(scope, buffered, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return max(0, int(value))
            except ValueError:
                return None  # not a number: the server refuses it before us
    return None


async def _too_large(scope: Scope, send: Send, limit: int, setting: str) -> None:
    problem = Problem(
        413,
        "payload-too-large",
        f"the request body is larger than {limit} bytes ({setting})",
        headers={"Connection": "close"},
    )
    await problem.response(scope.get("path")).__call__(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}
