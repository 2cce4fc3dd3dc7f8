"""The merchant API's FastAPI application: its routes, the gate every ``/v1`` handler
runs under, and its OpenAPI document.

``create_api(deps)`` builds it around the runtime's services; the web layer
(ivr/web/app.py) wraps it with the edge middleware and mounts the console beside it.
The OpenAPI document is at ``/openapi.json`` and checked in as ``docs/openapi.json``
(``arspay api openapi`` writes it; a test fails on drift).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ivr import __version__
from ivr.api import docs
from ivr.api.auth import AuthFailureLimiter, KeyCache, RateLimiter
from ivr.api.deps import ApiDeps
from ivr.api.idempotency import IdempotencyStore
from ivr.api.probes import add_probes
from ivr.api.route import Gate
from ivr.api.routes import (
    bulk,
    call_requests,
    card_migrations,
    customers,
    notices,
    payments,
    pg_accounts,
    pg_webhooks,
    schedules,
    webhooks,
)
from ivr.api.schemas import ProblemOut
from ivr.settings import ApiSettings
from ivr.web.problems import MEDIA_TYPE as PROBLEM
from ivr.web.problems import problem_for

ROUTERS = tuple(
    m.router
    for m in (
        customers,
        call_requests,
        payments,
        schedules,
        bulk,
        card_migrations,
        webhooks,
        notices,
        pg_accounts,
        pg_webhooks,
    )
)

DESCRIPTION = """\
The arspay merchant API: register payers' cards by phone (ARS), ask for a payment in a
short call, charge registered cards, schedule recurring charges, submit bulk jobs, and
receive webhooks.

* **Auth**: `Authorization: Bearer ak_…` (one merchant per key; every object is scoped
  to it — another merchant's ids answer 404).
* **Errors**: RFC 9457 `application/problem+json`; branch on `code`.
* **Idempotency**: send `Idempotency-Key` on POST/PUT/PATCH/DELETE; the same key and body
  within 24 h get the same answer (`Idempotent-Replayed: true`), a different body 422,
  a duplicate still running 409.
* **Pagination**: `?limit=&cursor=`; follow `next_cursor` while `has_more`.
* **Amounts**: integer KRW.
"""


def create_api(deps: ApiDeps | None, *, key_cache_s: float = 5.0) -> FastAPI:
    """The API's app (``/v1``; ``/health``, ``/ready``, ``/metrics``: ivr/api/probes.py;
    the docs when enabled); ``deps=None`` builds it only to render the OpenAPI document.
    ``ivr.web.app.create_app`` puts the edge middleware around it and mounts the
    console beside it."""
    app = FastAPI(
        title="arspay",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # ivr/api/docs.py serves them from packaged files, when enabled
        redoc_url=None,
    )
    if deps is not None:
        app.state.gate = Gate(
            deps,
            KeyCache(deps.merchants.authenticate, ttl_s=key_cache_s),
            RateLimiter(deps.settings.rate_limit_per_minute),
            IdempotencyStore(deps.db, deps.clock),
            AuthFailureLimiter(deps.settings.auth_failures_per_minute),
        )
        app.state.portone_webhooks = deps.portone_webhooks  # PG notifications (pg_webhooks.py)
    for router in ROUTERS:
        app.include_router(router)
    settings = deps.settings if deps is not None else ApiSettings()
    if settings.docs_enabled:
        app.include_router(docs.router())
    telemetry = deps.telemetry if deps is not None else None
    add_probes(app, telemetry, settings.metrics_token.get_secret_value())

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
