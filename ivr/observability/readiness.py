"""``/ready``: can this engine process take calls and API requests now?

Each check runs at once, within ``timeout_s``:

==============  ==============================================  =====================
check           how                                             when it fails
==============  ==============================================  =====================
``database``    ``SELECT 1`` on the engine database             not ready (503)
``vault``       in-process: a read on its database; remote: a   not ready (503)
                new connection to its socket, greeted
``engine``      the engine started: FastAGI listening, ARI      not ready (503)
                connected once, calls of a dead process ended
``ari``         the ARI WebSocket is up now (when ARI is on)    not ready (503)
``pg:<id>``     each PG account's circuit breaker               degraded (200)
==============  ==============================================  =====================

Why a PG breaker only degrades: the PG is shared by every engine, so taking this one
out of rotation moves no call anywhere better, and the engine keeps working through it
(billing-key charges wait, ``CircuitOpen``; registrations fail over to the merchant's
secondary account). The database, the vault and the telephony links are this process's
own: without them no call can be served here, and another node may serve it.

The answer names checks and account ids only — never a URL, a path or an error text —
so it can go without authentication (docs/operating.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import text

from ivr.gateways.breaker import BreakerSnapshot, BreakerState
from ivr.observability.registry import Metrics
from ivr.store.db import Database

READY, DEGRADED, NOT_READY = "ready", "degraded", "not_ready"


@runtime_checkable
class Pingable(Protocol):
    async def ping(self) -> None: ...


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    required: bool  # a failure makes the process not ready (else degraded)
    detail: str = ""  # a word: down, timeout, starting, disconnected, open, half_open
    ms: float | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "required": self.required}
        if self.detail:
            out["detail"] = self.detail
        if self.ms is not None:
            out["ms"] = round(self.ms, 1)
        return out


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def down(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok and c.required]

    @property
    def degraded(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok and not c.required]

    @property
    def status(self) -> str:
        if self.down:
            return NOT_READY
        return DEGRADED if self.degraded else READY

    @property
    def http_status(self) -> int:
        return 503 if self.down else 200

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.status,
            "down": self.down,
            "degraded": self.degraded,
            "checks": {c.name: c.as_json() for c in self.checks},
        }


LinkProbe = Callable[[], str | None]
"""A telephony link's state now: ``None`` when fine, else a word saying what is wrong."""


@dataclass
class Readiness:
    db: Database
    vault: object  # the runtime's vault client (checked when it has ``ping``)
    breakers: Callable[[], list[BreakerSnapshot]]
    metrics: Metrics | None = None
    timeout_s: float = 2.0
    links: dict[str, LinkProbe] = field(default_factory=dict)  # set by the engine

    async def check(self) -> Report:
        checks = list(
            await asyncio.gather(
                self._timed("database", self._database),
                self._timed("vault", self._vault),
            )
        )
        for name, probe in sorted(self.links.items()):
            problem = probe()
            checks.append(Check(name, problem is None, True, problem or ""))
        for b in self.breakers():
            closed = b.state is BreakerState.closed
            checks.append(Check(f"pg:{b.name}", closed, False, "" if closed else b.state.value))
        report = Report(tuple(checks))
        self._export(report)
        return report

    async def _timed(self, name: str, probe: Callable[[], Awaitable[None]]) -> Check:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                await probe()
        except TimeoutError:
            return Check(name, False, True, "timeout")
        except Exception:
            return Check(name, False, True, "down")
        return Check(name, True, True, ms=(time.perf_counter() - started) * 1000)

    async def _database(self) -> None:
        async with self.db.sessions() as s:
            await s.execute(text("SELECT 1"))

    async def _vault(self) -> None:
        vault = getattr(self.vault, "inner", self.vault)  # through a metered view
        if isinstance(vault, Pingable):
            await vault.ping()

    def _export(self, report: Report) -> None:
        if self.metrics is None:
            return
        for c in report.checks:
            if c.required:
                self.metrics.dependency_up.labels(c.name).set(1 if c.ok else 0)
        value = {READY: 1.0, DEGRADED: 0.5, NOT_READY: 0.0}[report.status]
        self.metrics.ready.set(value)
