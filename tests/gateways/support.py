"""Helpers for the gateway tests: the sandbox PG in-process on 127.0.0.1 (a random port),
a PortOne connector pointed at it, card data and order ids."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from ivr.domain.ids import new_order_id
from ivr.gateways.contract import KeyedCard
from ivr.gateways.portone import PortOneConfig, PortOneGateway
from ivr.gateways.sandbox import SandboxConfig, create_app
from ivr.gateways.sandbox.state import STATE, SandboxState
from ivr.settings import SANDBOX_CHANNEL_KEY

KEY = "sandbox-imp-key"
SECRET = "sandbox-imp-secret"
FUTURE = "2031-12"


def card(number: str = "4111111111111111", *, password: str = "12",  # noqa: S107
         birth: str = "880101", expiry: str = FUTURE) -> KeyedCard:  # fmt: skip
    return KeyedCard(number=number, expiry=expiry, birth=birth, password_2digits=password)


def order() -> str:
    return new_order_id()


@dataclass
class Sandbox:
    url: str
    app: web.Application
    http: aiohttp.ClientSession

    @property
    def state(self) -> SandboxState:
        return self.app[STATE]

    async def ledger(self, order_id: str) -> dict[str, Any]:
        async with self.http.get(
            f"{self.url}/sandbox/ledger", params={"merchant_uid": order_id}
        ) as r:
            assert r.status == 200
            data: dict[str, Any] = await r.json()
            return data

    async def summary(self) -> dict[str, int]:
        async with self.http.get(f"{self.url}/sandbox/ledger/summary") as r:
            assert r.status == 200
            data: dict[str, int] = await r.json()
            return data

    async def fault(
        self,
        endpoint: str,
        ordering: str,
        *,
        delay_ms: int = 0,
        count: int = 1,
        match: str | None = None,
    ) -> None:
        """A deterministic trigger: the next ``count`` requests of ``endpoint`` (for
        ``match`` only, when set) play ``ordering`` (ivr/gateways/sandbox/faults.py)."""
        body = {"endpoint": endpoint, "ordering": ordering, "delay_ms": delay_ms,
                "count": count, "match": match}  # fmt: skip
        async with self.http.post(f"{self.url}/sandbox/faults", json=body) as r:
            assert r.status == 201, await r.text()

    async def settled(self) -> None:
        """Wait until every request the sandbox started has finished recording (a
        ``late`` one records after its client gave up)."""
        if self.state.background:
            await asyncio.gather(*self.state.background, return_exceptions=True)

    async def revoke_tokens(self) -> None:
        async with self.http.post(f"{self.url}/sandbox/tokens/revoke") as r:
            assert r.status == 200


@asynccontextmanager
async def running_sandbox(
    ledger: Path, *, middlewares: Sequence[Any] = (), **overrides: Any
) -> AsyncIterator[Sandbox]:
    """``middlewares``: added around the sandbox's own (a test's recorder)."""
    options: dict[str, Any] = {"latency_ms": 0, **overrides}
    config = SandboxConfig(imp_key=KEY, imp_secret=SECRET, ledger_path=ledger, **options)
    app = create_app(config)
    app.middlewares.extend(middlewares)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield Sandbox(url=str(server.make_url("")).rstrip("/"), app=app, http=http)
    finally:
        await server.close()


def connector(url: str, **overrides: Any) -> PortOneGateway:
    options: dict[str, Any] = {"timeout_s": 2.0, "connect_timeout_s": 1.0,
                               "channel_key": SANDBOX_CHANNEL_KEY, **overrides}  # fmt: skip
    clock = options.pop("clock", None)
    config = PortOneConfig(base_url=url, imp_key=KEY, imp_secret=SECRET, **options)
    return PortOneGateway(config) if clock is None else PortOneGateway(config, clock=clock)


def luhn_complete(partial: str) -> str:
    """``partial`` plus the Luhn check digit."""
    for digit in "0123456789":
        candidate = partial + digit
        total = 0
        for i, ch in enumerate(reversed(candidate)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")
