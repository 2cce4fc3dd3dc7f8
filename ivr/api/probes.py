"""The operator's endpoints on the API port, outside ``/v1``: ``/health`` (liveness),
``/ready`` (readiness) and ``/metrics`` (Prometheus).

* ``/health``: 200 while the process answers HTTP at all. No check, no auth.
* ``/ready``: the checks of :mod:`ivr.observability.readiness`; 200 ``ready`` or
  ``degraded``, or 503 (``application/problem+json``, code ``not-ready``) naming the
  checks that are down. No auth: the answer names checks and PG account ids only.
* ``/metrics``: the runtime's registry in the Prometheus text format, gauges sampled
  at the scrape. Open unless ``api.metrics_token`` is set, then it takes
  ``Authorization: Bearer <token>`` (docs/operating.md, THREAT_MODEL.md).
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from ivr.observability.telemetry import CONTENT_TYPE, Telemetry
from ivr.web.problems import Problem


class CheckOut(BaseModel):
    ok: bool
    required: bool = Field(description="down: the process is not ready (else degraded)")
    detail: str | None = Field(
        None, description="down, timeout, starting, disconnected, open, half_open"
    )
    ms: float | None = None


class ReadyOut(BaseModel):
    state: str = Field(description="ready or degraded (not_ready is answered 503)")
    down: list[str]
    degraded: list[str] = Field(
        description="checks that failed without making it not ready: PG accounts whose "
        "circuit breaker is not closed"
    )
    checks: dict[str, CheckOut]


def add_probes(app: FastAPI, telemetry: Telemetry | None, metrics_token: str) -> None:
    """``/health`` always; ``/ready`` and ``/metrics`` answer 503 / 404 without
    ``telemetry`` (an app built only for its OpenAPI document)."""

    @app.get("/health", tags=["health"], summary="Liveness (no auth)")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["health"],
        summary="Readiness: database, vault, telephony links, PG breakers (no auth)",
        response_model=ReadyOut,
        responses={503: {"description": "not ready: `down` names the checks that failed"}},
    )
    async def ready() -> Any:
        if telemetry is None:
            no = Problem(503, "not-ready", "not ready: no runtime", extra={"down": ["runtime"]})
            return no.response("/ready")
        report = await telemetry.readiness.check()
        body = report.as_json()
        if report.down:
            detail = "not ready: " + ", ".join(report.down) + " down"
            return Problem(503, "not-ready", detail, extra=body).response("/ready")
        return JSONResponse(body)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if telemetry is None:
            return Problem(404, "not-found").response("/metrics")
        if metrics_token:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {metrics_token}".encode()):
                refused = Problem(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
                return refused.response("/metrics")
        return Response(await telemetry.exposition(), media_type=CONTENT_TYPE)
