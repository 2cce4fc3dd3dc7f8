"""SMS tests: a real store (SQLite file), real services, a FakeClock; the provider is
a loopback SMSC (smpp34) or a loopback aiohttp server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from ivr.clock import FakeClock
from ivr.domain.states import CallRequestKind
from ivr.notify.sms import SmsSender, build_sender
from ivr.notify.sms.dispatch import SmsDispatcher
from ivr.runtime import build
from ivr.settings import Settings, load_settings
from ivr.store import migrate
from ivr.store.db import Database
from ivr.store.tables import CallRequest, SmsMessage
from ivr.wiring import Services

S = TypeVar("S", bound=SmsSender)

MOBILE = "01012345678"
# long enough that the docs/product.md §9 payment text needs two UCS-2 parts
MERCHANT = "행복한미소치과의원"
PRODUCT = "임플란트 치료 및 정기 검진 패키지"


@dataclass
class World:
    settings: Settings
    services: Services
    clock: FakeClock
    merchant_id: str
    customer_id: str

    @property
    def db(self) -> Database:
        return self.services.db

    async def payment_request(self, amount: int = 1_530_000) -> tuple[CallRequest, SmsMessage]:
        new = await self.services.requests.create(
            self.merchant_id, self.customer_id, CallRequestKind.payment,
            product_name=PRODUCT, amount=amount,
        )  # fmt: skip
        return new.request, new.sms

    async def sms(self, sms_id: str) -> SmsMessage:
        async with self.db.sessions() as s:
            row = await s.get(SmsMessage, sms_id)
        assert row is not None
        return row

    async def request(self, request_id: str) -> CallRequest:
        async with self.db.sessions() as s:
            row = await s.get(CallRequest, request_id)
        assert row is not None
        return row

    def dispatcher(self, kind: type[S]) -> tuple[SmsDispatcher, S]:
        """The dispatcher over the sender this world's settings build, checked to be a
        ``kind`` (so a test knows which adapter it exercises)."""
        sender = build_sender(self.settings.sms)
        assert isinstance(sender, kind)
        return SmsDispatcher(
            self.db, self.clock, sender, self.settings.sms, self.services.requests
        ), sender


MakeWorld = Callable[..., Awaitable[World]]


@pytest.fixture
async def make_world(tmp_path: Path) -> AsyncIterator[MakeWorld]:
    opened: list[World] = []

    async def make(**sms: str) -> World:
        env = {
            "ARSPAY_CONFIG": "/nonexistent.toml",
            "ARSPAY_PATHS_VAR_DIR": str(tmp_path / "var"),
            **{f"ARSPAY_SMS_{k.upper()}": v for k, v in sms.items()},
        }
        settings = load_settings(env=env)
        db = Database(f"sqlite+aiosqlite:///{tmp_path / f'sms{len(opened)}.db'}")
        await migrate.upgrade(db)
        clock = FakeClock(datetime(2026, 11, 28, 3, 0, tzinfo=UTC))
        services = build(settings, clock=clock, db=db)
        await services.dids.import_numbers(["05051110001", "05051110002"])
        merchant = await services.merchants.create(MERCHANT)
        customer = await services.customers.create(merchant.id, mobile=MOBILE)
        world = World(settings, services, clock, merchant.id, customer.id)
        opened.append(world)
        return world

    yield make
    for w in opened:
        await w.services.close()
