"""Recurring charges end to end on the real store and the sandbox PG over HTTP, with a
FakeClock running months in seconds (issue #8 acceptance)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ivr.billing.scheduler import Scheduler, pending_requests_for
from ivr.billing.schedules import ScheduleService
from ivr.clock import SEOUL, FakeClock
from ivr.domain.states import CallRequestStatus
from ivr.gateways.contract import ChargeRequest, ChargeResult, ChargeStatus, Gateway
from ivr.gateways.declines import DeclineReason, Stage, decline
from ivr.jobs.queue import JobQueue
from ivr.payments.charger import ChargePolicy, Charger
from ivr.payments.service import PaymentService
from ivr.store.db import Database
from ivr.store.tables import PaymentAttempt, PaymentIntent, SmsMessage
from ivr.wiring import Services, build
from tests.gateways.support import connector, running_sandbox
from tests.payments.support import merchant_with_cards

pytestmark = pytest.mark.anyio
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
        )
        await pg.inner.aclose()  # type: ignore[attr-defined]


def monthly(day: int, count: int, start: str = "2026-12-01") -> dict[str, object]:
    return {"rule": {"every": "month", "day": day}, "start": start, "count": count, "at": "10:00"}


async def test_twelve_months_auto_with_soft_declines_retries_and_dunning(billing: Billing) -> None:
    b = billing
    sched = await b.schedules.create(
        b.merchant_id,
        b.customer_id,
        plan=monthly(31, 12),
        amount=55_000,
        order_name="헬스 정기권",
        card_id=b.card_id,
    )
    # cycles 0-1 pay; cycle 2 soft-declines twice then pays on the 2nd retry (+3 d);
    # cycle 5 soft-declines 4 times (first try + 3 retries) -> dunning; the rest pay.
    await b.run_until(datetime(2027, 2, 1, tzinfo=UTC))
    assert [i.status for i in await b.intents()] == ["succeeded", "succeeded"]
    b.pg.declines = ["soft", "soft"]
    await b.run_until(datetime(2027, 3, 10, tzinfo=UTC))
    intents = await b.intents()
    assert [i.status for i in intents[2:]] == ["failed", "failed", "succeeded"]
    gaps = [(intents[3].created_at - intents[2].created_at).days,
            (intents[4].created_at - intents[2].created_at).days]  # fmt: skip
    assert gaps == [1, 3]
    await b.run_until(datetime(2027, 5, 15, tzinfo=UTC))
    b.pg.declines = ["soft"] * 4
    await b.run_until(datetime(2027, 12, 31, 12, tzinfo=UTC))
    intents = await b.intents()
    statuses = [i.status for i in intents]
    assert statuses.count("succeeded") == 11  # 12 cycles, one ended in dunning
    assert statuses.count("failed") == 2 + 4
    dunning = await pending_requests_for(b.db, sched.id)
    assert len(dunning) == 1
    assert dunning[0].amount == 55_000
    # February's day 31 fell on the 28th, in Seoul time
    feb = [i for i in intents if i.created_at.month == 2 and i.created_at.year == 2027]
    assert feb
    assert feb[0].created_at.astimezone(SEOUL).date().isoformat() == "2027-02-28"
    # one receipt SMS per successful charge
    async with b.db.sessions() as s:
        receipts = await s.scalar(
            select(func.count()).select_from(SmsMessage).where(SmsMessage.kind == "receipt")
        )
    assert receipts == 11
    assert (await b.schedules.get(b.merchant_id, sched.id)).status == "completed"


async def test_a_hard_decline_is_not_retried_and_goes_to_dunning(billing: Billing) -> None:
    b = billing
    sched = await b.schedules.create(
        b.merchant_id,
        b.customer_id,
        plan=monthly(5, 1),
        amount=30_000,
        order_name="학원비",
        card_id=b.card_id,
    )
    b.pg.declines = ["hard"]
    await b.run_until(datetime(2026, 12, 20, tzinfo=UTC))
    assert [i.status for i in await b.intents()] == ["failed"]
    assert b.pg.charges == 1
    [dunning] = await pending_requests_for(b.db, sched.id)
    assert dunning.status in (CallRequestStatus.created.value, CallRequestStatus.sms_sent.value)


async def test_consent_then_auto_charges_once_after_the_deadline(billing: Billing) -> None:
    b = billing
    plan = monthly(10, 1) | {"consent_hours": 48}
    sched = await b.schedules.create(
        b.merchant_id,
        b.customer_id,
        plan=plan,
        amount=20_000,
        order_name="관리비",
        mode="consent_then_auto",
        card_id=b.card_id,
    )
    await b.run_until(datetime(2026, 12, 11, tzinfo=UTC))
    [request] = await pending_requests_for(b.db, sched.id)
    assert await b.intents() == []  # waiting for the payer's call
    await b.run_until(datetime(2026, 12, 20, tzinfo=UTC))
    [intent] = await b.intents()
    assert intent.status == "succeeded"
    request = (await pending_requests_for(b.db, sched.id))[0]
    assert request.status == CallRequestStatus.cancelled.value
    await b.run_until(datetime(2027, 1, 31, tzinfo=UTC))
    assert len(await b.intents()) == 1  # once


async def test_a_cycle_is_started_once_by_two_schedulers(billing: Billing) -> None:
    b = billing
    await b.schedules.create(
        b.merchant_id,
        b.customer_id,
        plan=monthly(3, 2),
        amount=10_000,
        order_name="구독",
        card_id=b.card_id,
    )
    other = Scheduler(
        b.db,
        b.clock,
        JobQueue(b.db, b.clock, worker_id="other"),
        b.scheduler.payments,
        b.scheduler.charger,
        b.services.requests,
    )
    while b.clock.now() < datetime(2027, 2, 10, tzinfo=UTC):
        b.clock.advance(timedelta(hours=6))
        await b.scheduler.tick()
        await other.tick()
        await b.scheduler.run_jobs()
        await other.run_jobs()
    intents = await b.intents()
    assert [i.status for i in intents] == ["succeeded", "succeeded"]
    async with b.db.sessions() as s:
        attempts = await s.scalar(select(func.count()).select_from(PaymentAttempt))
    assert attempts == 2


async def test_pause_skips_missed_cycles_and_cancel_stops(billing: Billing) -> None:
    b = billing
    sched = await b.schedules.create(
        b.merchant_id,
        b.customer_id,
        plan=monthly(15, 6),
        amount=10_000,
        order_name="구독",
        card_id=b.card_id,
    )
    from ivr.domain.states import ScheduleStatus

    await b.schedules.set_status(b.merchant_id, sched.id, ScheduleStatus.paused, actor="t")
    await b.run_until(datetime(2027, 2, 1, tzinfo=UTC))
    assert await b.intents() == []
    await b.schedules.set_status(b.merchant_id, sched.id, ScheduleStatus.active, actor="t")
    await b.run_until(datetime(2027, 3, 1, tzinfo=UTC))
    assert len(await b.intents()) == 1  # February only: December and January were skipped
    timeline = await b.schedules.timeline(b.merchant_id, sched.id)
    assert timeline["upcoming"][0]["due_at"].startswith("2027-03-15")
    await b.schedules.set_status(b.merchant_id, sched.id, ScheduleStatus.cancelled, actor="t")
    await b.run_until(datetime(2027, 6, 1, tzinfo=UTC))
    assert len(await b.intents()) == 1
