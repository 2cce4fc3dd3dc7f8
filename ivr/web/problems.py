"""RFC 9457 problem details.

Every error answer is ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail`` and a stable ``code`` (the last segment of ``type``); clients branch on
``code``, never on ``detail``. Validation errors add ``errors`` (where and what).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ivr.domain.text import REFUSED_ERROR
from ivr.errors import ArspayError, InvalidInput, NotFound
from ivr.gateways.errors import GatewayError
from vault.errors import VaultError

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:arspay:problem:"

TITLES: dict[str, str] = {
    "unauthorized": "Missing or invalid API key",
    "not-found": "No such object",
    "method-not-allowed": "Method not allowed",
    "validation-failed": "The request does not match the schema",
    "invalid-input": "The request was understood but its values are not acceptable",
    "invalid-cursor": "The pagination cursor is not valid",
    "conflict": "The object is not in a state that allows this",
    "invalid-state-transition": "The object cannot move to the requested state",
    "did-pool-exhausted": "No virtual number is free for this mobile now",
    "idempotency-key-reused": "The Idempotency-Key was used with a different request",
    "idempotency-in-progress": "A request with this Idempotency-Key is still being processed",
    "invalid-idempotency-key": "The Idempotency-Key header is not valid",
    "rate-limited": "Too many requests",
    "payload-too-large": "The request body is too large",
    "gateway-error": "The payment gateway did not complete the request",
    "gateway-unavailable": "The payment gateway could not be reached",
    "pg-circuit-open": "The payment gateway account is paused after repeated failures",
    "gateway-outcome-unknown": "The payment gateway did not answer in time",
    "gateway-rejected": "The payment gateway refused the request",
    "gateway-auth-failed": "The payment gateway refused the engine's credentials",
    "card-declined": "The card was declined",
    "cancel-refused": "The payment gateway refused the cancellation",
    "vault-invalid-request": "Internal error",
    "internal-error": "Internal error",
    "not-ready": "The engine is not ready to serve",
}


class Problem(Exception):
    """An error answer; ``code`` is a kebab-case id (the engine errors' ``error_id``)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or TITLES.get(code, code))
        self.status = status
        self.code = code
        self.detail = detail or TITLES.get(code, code)
        self.headers = dict(headers or {})
        self.extra = extra or {}

    def body(self, instance: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": TYPE_PREFIX + self.code,
            "title": TITLES.get(self.code, self.code),
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            out["instance"] = instance
        out.update(self.extra)
        return out

    def response(self, instance: str | None = None) -> Response:
        return Response(
            content=json.dumps(self.body(instance), ensure_ascii=False),
            status_code=self.status,
            media_type=MEDIA_TYPE,
            headers=self.headers,
        )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        # "input" may echo what the client sent (a card number in a wrong field, say):
        # answer with where and what, never the value.
        out.append({"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg"))})
    return out


def problem_for(exc: BaseException) -> Problem:
    """The problem answer for an exception raised while handling a request.

    Engine errors carry their own ``error_id`` and ``http_status``; a 5xx never
    repeats its message (it may name internals)."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, RequestValidationError):
        # a refusal of the text guard says what is wrong in the detail too (it names the
        # field, never the value)
        refused = [str(e.get("msg")) for e in exc.errors() if e.get("type") == REFUSED_ERROR]
        detail = refused[0] if refused else ""
        return Problem(422, "validation-failed", detail, extra={"errors": _validation_errors(exc)})
    if isinstance(exc, StarletteHTTPException):
        known = {401: "unauthorized", 404: "not-found", 405: "method-not-allowed"}
        if exc.status_code in known:
            return Problem(exc.status_code, known[exc.status_code], headers=exc.headers)
        return Problem(400, "invalid-input", str(exc.detail))
    if isinstance(exc, VaultError) and not isinstance(exc, (InvalidInput, NotFound)):
        return Problem(500, "internal-error")  # the engine's own request to its vault
    if isinstance(exc, ArspayError) and exc.http_status < 500:
        return Problem(exc.http_status, exc.error_id, exc.message)
    if isinstance(exc, GatewayError):  # 502/503/504: the PG, not us; safe to retry
        return Problem(exc.http_status, exc.error_id, "the payment gateway did not complete it")
    return Problem(500, "internal-error")
