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
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ivr import __version__
from ivr.api.auth import KeyCache, RateLimiter
from ivr.api.deps import ApiDeps
from ivr.api.idempotency import IdempotencyStore
from ivr.api.problems import problem_for
from ivr.api.route import Gate
from ivr.api.routes import bulk, call_requests, customers, payments, schedules, webhooks
from ivr.settings import ApiSettings

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


def create_app(deps: ApiDeps, *, key_cache_s: float = 5.0) -> FastAPI:
    app = FastAPI(
        title="arspay",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.gate = Gate(
        deps,
        KeyCache(deps.merchants.authenticate, ttl_s=key_cache_s),
        RateLimiter(deps.settings.rate_limit_per_minute),
        IdempotencyStore(deps.db, deps.clock),
    )
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/health", tags=["health"], summary="Liveness (no auth)")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    async def as_problem(request: Request, exc: Exception) -> Response:
        return problem_for(exc).response(request.url.path)

    app.add_exception_handler(StarletteHTTPException, as_problem)
    app.add_exception_handler(RequestValidationError, as_problem)
    return app


def openapi_document(app: FastAPI) -> str:
    """The OpenAPI document as checked in (stable key order, trailing newline)."""
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (the engine owns SIGTERM/SIGINT)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


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
    )
    server = _Server(config)
    log.info("api listening on http://%s:%d", settings.host, settings.port)
    try:
        await server.serve()
    except asyncio.CancelledError:
        server.should_exit = True
        raise
