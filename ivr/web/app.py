"""The web app factory: the merchant API with the admin console mounted beside it at
``/console``, behind the edge middleware both share (trusted proxies' headers, HSTS,
the body-size limit: ivr/web/edge.py).

The direction is one way: the web layer takes the runtime's services (through
``ApiDeps``/``ConsoleDeps``, views filled from a :class:`~ivr.runtime.Runtime`); the API
and the console do not import each other and share only ``ivr.web``'s pieces.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from starlette.responses import Response
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ivr.api.app import create_api
from ivr.api.deps import ApiDeps
from ivr.console.app import create_console
from ivr.console.web import PREFIX, ConsoleDeps
from ivr.settings import ApiSettings
from ivr.web.edge import (
    HSTS,
    BodyLimit,
    SecureCookies,
    secure_transport,
    trusted_hosts,
)


def create_app(
    deps: ApiDeps | None, *, key_cache_s: float = 5.0, console: ConsoleDeps | None = None
) -> FastAPI:
    """The app; ``deps=None`` builds it only to render the OpenAPI document. With
    ``console`` the admin console is mounted at ``/console`` (not part of the API's
    OpenAPI document)."""
    app = create_api(deps, key_cache_s=key_cache_s)
    settings = deps.settings if deps is not None else ApiSettings()
    secure: SecureCookies = "auto"
    if console is not None:
        secure = console.settings.console.secure_cookies
    _edge(app, settings, secure)
    if console is not None:
        app.mount(PREFIX, create_console(console))
    return app


def _edge(app: FastAPI, settings: ApiSettings, secure: SecureCookies) -> None:
    """The middleware every request passes first (outermost last): trusted proxies'
    headers, HSTS, the body-size limit (ivr/web/edge.py)."""
    app.add_middleware(
        BodyLimit,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )

    @app.middleware("http")
    async def strict_transport(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if secure_transport(request, secure):
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response

    app.add_middleware(
        ProxyHeadersMiddleware,
        trusted_hosts=trusted_hosts(settings.trusted_proxies),
    )
