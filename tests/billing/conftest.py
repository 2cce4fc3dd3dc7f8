"""Fixtures for billing tests: the real store (SQLite and PostgreSQL), the sandbox PG
in-process over HTTP with scripted declines, a FakeClock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.billing.scheduler import Scheduler
from ivr.billing.schedules import ScheduleService
from ivr.clock import FakeClock
from ivr.gateways.contract import ChargeRequest, ChargeResult, ChargeStatus, Gateway
from ivr.gateways.declines import DeclineReason, Stage, decline
from ivr.jobs.queue import JobQueue
from ivr.payments.charger import ChargePolicy, Charger
from ivr.payments.service import PaymentService
from ivr.runtime import build
from ivr.store.db import Database
from ivr.store.tables import PaymentIntent
from ivr.wiring import Services
from tests.gateways.support import connector, running_sandbox
from tests.payments.support import merchant_with_cards

CARD = "4111111111111111"


class ScriptedDeclines:
    """The sandbox PG, except that charges decline as the test says (soft or hard)."""

    def __init__(self, inner: Gateway) -> None:
        self.inner = inner
        self.declines: list[str] = []  # "soft" / "hard", consumed one per charge
        self.charges = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def charge_billing_key(self, req: ChargeRequest) -> ChargeResult:
        self.charges += 1
        if self.declines:
            kind = self.declines.pop(0)
            reason = (
                DeclineReason.insufficient_funds if kind == "soft" else DeclineReason.lost_or_stolen
            )
            return ChargeResult(
                order_id=req.order_id,
                status=ChargeStatus.failed,
                amount=req.amount,
                pg_tx_id=None,
                approval_no=None,
                card_issuer=None,
                card_last4=None,
                card_type=None,
                installment_months=0,
                paid_at=None,
                decline=decline(reason, Stage.payment, "test"),
            )
        return await self.inner.charge_billing_key(req)


@dataclass
class Billing:
    db: Database
    clock: FakeClock
    services: Services
    pg: ScriptedDeclines
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

    async def intents(self) -> list[PaymentIntent]:
        async with self.db.sessions() as s:
            return list(await s.scalars(select(PaymentIntent).order_by(PaymentIntent.created_at)))


@pytest.fixture
async def billing(db: Database, tmp_path: Path) -> AsyncIterator[Billing]:
    clock = FakeClock(datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    async with running_sandbox(tmp_path / "ledger.db") as sandbox:
        pg = ScriptedDeclines(connector(sandbox.url))
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
