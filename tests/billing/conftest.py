"""Fixtures for billing tests: the real store (SQLite and PostgreSQL), the sandbox PG
in-process over HTTP behind a FakeGateway that scripts declines, a FakeClock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ivr.billing.scheduler import Scheduler
from ivr.billing.schedules import ScheduleService
from ivr.clock import FakeClock
from ivr.gateways.fake import FakeGateway
from ivr.jobs.queue import JobQueue
from ivr.payments.charger import ChargePolicy, Charger
from ivr.payments.service import PaymentService
from ivr.runtime import build
from ivr.store.db import Database
from ivr.store.tables import PaymentIntent, Schedule
from ivr.wiring import Services
from tests.gateways.support import connector, running_sandbox
from tests.payments.support import merchant_with_cards

CARD = "4111111111111111"


@dataclass
class Billing:
    db: Database
    clock: FakeClock
    services: Services
    pg: FakeGateway  # the sandbox PG, with the declines a test scripts
    schedules: ScheduleService
    scheduler: Scheduler
    merchant_id: str
    customer_id: str
    card_id: str
    charger: Charger
    payments: PaymentService
    log: list[str] = field(default_factory=list)

    async def run_until(self, until: datetime, step: timedelta = timedelta(hours=6)) -> None:
        while self.clock.now() < until:
            self.clock.advance(step)
            await self.scheduler.tick()
            while await self.scheduler.run_jobs():
                pass

    async def schedule(
        self,
        plan: dict[str, Any],
        amount: int,
        order_name: str,
        *,
        mode: str = "auto",
        with_card: bool = True,
    ) -> Schedule:
        """A schedule of the test customer, charging its card (``with_card=False``: none)."""
        return await self.schedules.create(
            self.merchant_id, self.customer_id, plan=plan, amount=amount, order_name=order_name,
            mode=mode, card_id=self.card_id if with_card else None,
        )  # fmt: skip

    async def intents(self) -> list[PaymentIntent]:
        async with self.db.sessions() as s:
            return list(await s.scalars(select(PaymentIntent).order_by(PaymentIntent.created_at)))


@pytest.fixture
async def billing(db: Database, tmp_path: Path) -> AsyncIterator[Billing]:
    clock = FakeClock(datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    async with running_sandbox(tmp_path / "ledger.db") as sandbox:
        pg = FakeGateway(inner=connector(sandbox.url))
        mid, cards = await merchant_with_cards(db, pg.inner, [CARD])  # type: ignore[arg-type]
        from ivr.settings import load_settings

        settings = load_settings(
            env={"ARSPAY_CONFIG": "/x.toml", "ARSPAY_PATHS_VAR_DIR": str(tmp_path)}
        )
        services = build(settings, clock=clock, db=db)
        await services.dids.import_numbers([f"0505000{i:04d}" for i in range(50)])
        payments = PaymentService(db, clock, pg)  # type: ignore[arg-type]
        charger = Charger(db, clock, pg, ChargePolicy(blind_backoff_s=0.0))  # type: ignore[arg-type]
        queue = JobQueue(db, clock, worker_id="test")
        scheduler = Scheduler(db, clock, queue, payments, charger, services.requests)
        async with db.sessions() as s:
            from ivr.store.tables import Card

            card = await s.get(Card, cards[CARD])
            assert card is not None
            customer_id = card.customer_id
        yield Billing(
            db,
            clock,
            services,
            pg,
            ScheduleService(db, clock),
            scheduler,
            mid,
            customer_id,
            cards[CARD],
            charger,
            payments,
        )
        await pg.inner.aclose()  # type: ignore[attr-defined]
