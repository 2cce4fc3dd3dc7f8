"""Webhook tests: a real store (SQLite file and PostgreSQL, via the ``db`` fixture),
a FakeClock, and a loopback aiohttp receiver that can answer 503 or stop listening."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import NamedTuple

import pytest
from aiohttp import web

from ivr.clock import FakeClock
from ivr.domain.ids import new_id
from ivr.domain.states import MerchantStatus
from ivr.store.db import Database
from ivr.store.tables import Merchant, WebhookEndpoint
from ivr.webhooks.service import WebhookService


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers ``status`` (200 by default) and records every request it accepts."""

    url: str = ""
    status: int = 200
    hits: list[Hit] = field(default_factory=list)
    refused: int = 0
    runner: web.AppRunner | None = None
    port: int = 0

    @property
    def accepted(self) -> list[Hit]:
        return [h for h in self.hits if h.headers.get("x-test-status") == "200"]

    async def start(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            headers = {k.lower(): v for k, v in request.headers.items()}
            headers["x-test-status"] = str(self.status)
            self.hits.append(Hit(headers, await request.read()))
            return web.Response(status=self.status, text="ok")

        app = web.Application()
        app.router.add_post("/hook", handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}/hook"

    async def stop(self) -> None:
        """Stop listening (connections are refused until :meth:`start`)."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def make_merchant(db: Database, clock: FakeClock, name: str = "행복치과") -> str:
    m = Merchant(
        id=new_id("mer"),
        name=name,
        status=MerchantStatus.active.value,
        settings={},
        created_at=clock.now(),
    )
    async with db.transaction() as s:
        s.add(m)
    return m.id


class Hooked(NamedTuple):
    svc: WebhookService
    merchant: str
    endpoint: WebhookEndpoint
    secret: str


async def merchant_hooked(
    db: Database, clock: FakeClock, url: str, event_types: list[str] | None = None
) -> Hooked:
    """A new merchant with one webhook endpoint at ``url`` (every event type unless
    ``event_types`` names some), and the service that made it."""
    merchant = await make_merchant(db, clock)
    svc = WebhookService(db, clock)
    endpoint, secret = await svc.create_endpoint(merchant, url, event_types, actor="test")
    return Hooked(svc, merchant, endpoint, secret)
