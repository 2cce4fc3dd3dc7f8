"""The FastAPI application and how the engine serves it.

``create_app(deps)`` builds the app around the engine's services; ``serve`` runs it
with uvicorn *inside the engine's event loop* (the engine's own signal handling stays
in charge: uvicorn's is switched off). The OpenAPI document is at ``/openapi.json`` and
checked in as ``docs/openapi.json`` (``arspay api openapi`` writes it; a test fails on
drift).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ivr import __version__
from ivr.api import docs
from ivr.api.auth import AuthFailureLimiter, KeyCache, RateLimiter
from ivr.api.deps import ApiDeps
from ivr.api.edge import (
    HSTS,
    BodyLimit,
    SecureCookies,
    secure_transport,
    trusted_hosts,
)
from ivr.api.idempotency import IdempotencyStore
from ivr.api.problems import MEDIA_TYPE as PROBLEM
from ivr.api.problems import problem_for
from ivr.api.route import Gate
from ivr.api.routes import bulk, call_requests, customers, payments, schedules, webhooks
from ivr.api.schemas import ProblemOut
from ivr.errors import ConfigError
from ivr.settings import ApiSettings

if TYPE_CHECKING:
    from ivr.console.web import ConsoleDeps
    from ivr.runtime import Runtime

log = logging.getLogger("arspay.api")

ROUTERS = tuple(m.router for m in (customers, call_requests, payments, schedules, bulk, webhooks))

DESCRIPTION = """\
The arspay merchant API: register payers' cards by phone (ARS), ask for a payment in a
short call, charge registered cards, schedule recurring charges, submit bulk jobs, and
receive webhooks.

* **Auth**: `Authorization: Bearer ak_…` (one merchant per key; every object is scoped
  to it — another merchant's ids answer 404).
* **Errors**: RFC 9457 `application/problem+json`; branch on `code`.
* **Idempotency**: send `Idempotency-Key` on POST/PATCH/DELETE; the same key and body
  within 24 h get the same answer (`Idempotent-Replayed: true`), a different body 422,
  a duplicate still running 409.
* **Pagination**: `?limit=&cursor=`; follow `next_cursor` while `has_more`.
* **Amounts**: integer KRW.
"""


def create_app(
    deps: ApiDeps | None, *, key_cache_s: float = 5.0, console: ConsoleDeps | None = None
) -> FastAPI:
    """The app; ``deps=None`` builds it only to render the OpenAPI document. With
    ``console`` the admin console is mounted at ``/console`` (not part of the API's
    OpenAPI document)."""
    app = FastAPI(
        title="arspay",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # ivr/api/docs.py serves them from packaged files, when enabled
        redoc_url=None,
    )
    settings = deps.settings if deps is not None else ApiSettings()
    if deps is not None:
        app.state.gate = Gate(
            deps,
            KeyCache(deps.merchants.authenticate, ttl_s=key_cache_s),
            RateLimiter(deps.settings.rate_limit_per_minute),
            IdempotencyStore(deps.db, deps.clock),
            AuthFailureLimiter(deps.settings.auth_failures_per_minute),
        )
    for router in ROUTERS:
        app.include_router(router)
    if settings.docs_enabled:
        app.include_router(docs.router())
    secure: SecureCookies = "auto"
    if console is not None:
        secure = console.settings.console.secure_cookies
    _edge(app, settings, secure)
    if console is not None:
        from ivr.console.web import PREFIX, create_console

        app.mount(PREFIX, create_console(console))

    @app.get("/health", tags=["health"], summary="Liveness (no auth)")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_problem_responses(get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            ))  # fmt: skip
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    async def as_problem(request: Request, exc: Exception) -> Response:
        return problem_for(exc).response(request.url.path)

    app.add_exception_handler(StarletteHTTPException, as_problem)
    app.add_exception_handler(RequestValidationError, as_problem)
    return app


def _edge(app: FastAPI, settings: ApiSettings, secure: SecureCookies) -> None:
    """The middleware every request passes first (outermost last): trusted proxies'
    headers, HSTS, the body-size limit (ivr/api/edge.py)."""
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


def with_problem_responses(doc: dict[str, Any]) -> dict[str, Any]:
    """Every 4xx/5xx answer is documented as ``application/problem+json`` with the
    :class:`ProblemOut` schema (FastAPI would say ``application/json`` and, for 422,
    its own validation-error shape)."""
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components["ProblemOut"] = ProblemOut.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    ref = {"$ref": "#/components/schemas/ProblemOut"}
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            for status, response in op.get("responses", {}).items():
                if status[0] in "45":
                    response["content"] = {PROBLEM: {"schema": ref}}
    return doc


def openapi_document(app: FastAPI) -> str:
    """The OpenAPI document as checked in (stable key order, trailing newline)."""
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (the engine owns SIGTERM/SIGINT)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def api_worker(rt: Runtime, *, purge_every_s: float = 3600.0) -> None:
    """The engine's API worker: serve the app and purge expired idempotency keys."""
    deps = ApiDeps.from_runtime(rt)
    console = None
    if rt.services.settings.console.enabled:
        from ivr.console.web import ConsoleDeps

        console = ConsoleDeps.from_runtime(rt, deps)
    app = create_app(deps, console=console)

    async def purge() -> None:
        store = IdempotencyStore(deps.db, deps.clock)
        while True:
            try:
                await store.purge()
                if console is not None:
                    await console.sessions.purge()
            except Exception:  # a database hiccup must not stop the API
                log.exception("idempotency key purge failed")
            await asyncio.sleep(purge_every_s)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(purge(), name="api-purge")
        tg.create_task(serve(app, deps.settings), name="api-serve")


async def serve(app: FastAPI, settings: ApiSettings) -> None:
    """Serve until cancelled."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # paths hold only ids, but the engine logs what it chooses
        lifespan="off",
        server_header=False,
        proxy_headers=False,  # the app's own middleware, from api.trusted_proxies
    )
    server = _Server(config)
    log.info("api listening on http://%s:%d", settings.host, settings.port)
    try:
        await server.serve()
    except asyncio.CancelledError:
        # Close the listening socket and the open connections before going: cancelling
        # uvicorn's main loop skips its own shutdown.
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.shutdown(), timeout=5)
        raise
    except SystemExit:  # uvicorn exits when it cannot bind
        raise ConfigError(
            f"the API cannot listen on {settings.host}:{settings.port} (in use?)"
        ) from None
