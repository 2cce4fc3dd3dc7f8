"""The route class every ``/v1`` handler runs under.

Order for each request: refuse a source over its budget of failed authentications
(429) → authenticate the Bearer key (a 401 spends that budget) → spend a rate-limit
token → if the request carries ``Idempotency-Key`` (POST, PUT, PATCH, DELETE), replay or
claim it → run the handler → turn any error into problem+json → store the answer under
the key (any signing secret in it withheld).
Handlers get the merchant from :func:`principal` and new object ids from
:func:`new_object_id` (which is the idempotency key's reserved id when there is one).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from ivr.api import idempotency as idem
from ivr.api.auth import AuthFailureLimiter, KeyCache, RateLimiter, key_prefix
from ivr.api.deps import ApiDeps
from ivr.domain.ids import new_id
from ivr.merchants.service import Principal
from ivr.web.edge import source_of
from ivr.web.problems import Problem, problem_for

log = logging.getLogger("arspay.api")

Handler = Callable[[Request], Awaitable[Response]]
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_KEEP_HEADERS = ("content-type", "location")


@dataclass
class Gate:
    deps: ApiDeps
    keys: KeyCache
    limiter: RateLimiter
    store: idem.IdempotencyStore
    failures: AuthFailureLimiter

    async def handle(self, request: Request, inner: Handler) -> Response:
        path = request.url.path
        source = source_of(request)
        header = request.headers.get("authorization")
        try:
            self.failures.check_source(source)
            principal = await self.keys.principal(header)
            limit_headers = self.limiter.take(principal.key_id)
        except Problem as p:
            if p.status == 401:
                p = self.failures.failed(source, key_prefix(header)) or p
            return p.response(path)
        request.state.principal = principal
        key = request.headers.get(idem.HEADER)
        if key is None or request.method not in _WRITES:
            response = await self._run(request, inner)
        else:
            response = await self._idempotent(request, inner, principal, key)
        response.headers.update(limit_headers)
        return response

    async def _run(self, request: Request, inner: Handler) -> Response:
        try:
            return await inner(request)
        except Exception as exc:  # every error becomes problem+json
            problem = problem_for(exc)
            if problem.status >= 500:
                log.error(
                    "api handler failed: %s %s (%s)",
                    request.method,
                    request.url.path,
                    type(exc).__name__,
                    exc_info=not isinstance(exc, Problem),
                )
            return problem.response(request.url.path)

    async def _idempotent(
        self, request: Request, inner: Handler, principal: Principal, key: str
    ) -> Response:
        path = request.url.path
        try:
            idem.check_key(key)
            body = await request.body()
            begun = await self.store.begin(
                principal.merchant_id,
                key,
                method=request.method,
                path=path,
                fingerprint=idem.fingerprint(
                    request.method,
                    path,
                    request.url.query,
                    request.headers.get("content-type", ""),
                    body,
                ),
                legacy_fingerprint=idem.legacy_fingerprint(
                    request.method, path, request.headers.get("content-type", ""), body
                ),
            )
        except Problem as p:
            return p.response(path)
        if begun.replay is not None:
            r = begun.replay
            return Response(
                content=r.body,
                status_code=r.status,
                headers={**r.headers, "Idempotent-Replayed": "true"},
            )
        request.state.resource_id = begun.resource_id
        response = await self._run(request, inner)
        if response.status_code >= 500:
            await self.store.release(principal.merchant_id, key)
            return response
        body_bytes = bytes(response.body)
        headers = {h: response.headers[h] for h in _KEEP_HEADERS if h in response.headers}
        await self.store.finish(
            principal.merchant_id,
            key,
            idem.Stored(response.status_code, idem.replay_body(body_bytes.decode()), headers),
        )
        return response


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Any]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            gate: Gate = request.app.state.gate
            return await gate.handle(request, inner)

        return handler


_bearer = HTTPBearer(auto_error=False, description="an API key: ak_…")


def principal(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The authenticated merchant (set by :class:`Gate`; the Bearer dependency documents
    the scheme in OpenAPI)."""
    value: Principal = request.state.principal
    return value


def deps(request: Request) -> ApiDeps:
    value: ApiDeps = request.app.state.gate.deps
    return value


def new_object_id(request: Request, prefix: str) -> str:
    """The id for the object this request creates: the one reserved by its
    ``Idempotency-Key`` (so a retry after a crash finds it), else a fresh one."""
    reserved = getattr(request.state, "resource_id", None)
    return f"{prefix}_{reserved}" if reserved else new_id(prefix)


def actor(p: Principal) -> str:
    return f"api:{p.key_id}"
