"""Recurring charges end to end on the real store and the sandbox PG over HTTP, with a
FakeClock running months in seconds (issue #8 acceptance)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from ivr.billing.scheduler import Scheduler, pending_requests_for
from ivr.clock import SEOUL
from ivr.domain.states import CallRequestStatus
from ivr.gateways.fake import Outcome
from ivr.jobs.queue import JobQueue
from ivr.store.tables import CallRequest, Notice, PaymentAttempt, SmsMessage

from .conftest import Billing

pytestmark = pytest.mark.anyio
CARD = "4111111111111111"


def monthly(day: int, count: int, start: str = "2026-12-01") -> dict[str, object]:
    return {"rule": {"every": "month", "day": day}, "start": start, "count": count, "at": "10:00"}


@pytest.mark.slow
async def test_twelve_months_auto_with_soft_declines_retries_and_dunning(billing: Billing) -> None:
    b = billing
    sched = await b.schedule(monthly(31, 12), 55_000, "헬스 정기권")
    # cycles 0-1 pay; cycle 2 soft-declines twice then pays on the 2nd retry (+3 d);
    # cycle 5 soft-declines 4 times (first try + 3 retries) -> dunning; the rest pay.
    await b.run_until(datetime(2027, 2, 1, tzinfo=UTC))
    assert [i.status for i in await b.intents()] == ["succeeded", "succeeded"]
    b.pg.script("charge_billing_key", Outcome.soft_decline, Outcome.soft_decline)
    await b.run_until(datetime(2027, 3, 10, tzinfo=UTC))
    intents = await b.intents()
    assert [i.status for i in intents[2:]] == ["failed", "failed", "succeeded"]
    gaps = [(intents[3].created_at - intents[2].created_at).days,
            (intents[4].created_at - intents[2].created_at).days]  # fmt: skip
    assert gaps == [1, 3]
    await b.run_until(datetime(2027, 5, 15, tzinfo=UTC))
    b.pg.script("charge_billing_key", *[Outcome.soft_decline] * 4)
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
    # one receipt (the payment_approved notice) per successful charge
    async with b.db.sessions() as s:
        receipts = await s.scalar(
            select(func.count()).select_from(Notice).where(Notice.kind == "payment_approved")
        )
    assert receipts == 11
    assert (await b.schedules.get(b.merchant_id, sched.id)).status == "completed"


async def test_a_hard_decline_is_not_retried_and_goes_to_dunning(billing: Billing) -> None:
    b = billing
    sched = await b.schedule(monthly(5, 1), 30_000, "학원비")
    b.pg.script("charge_billing_key", Outcome.hard_decline)
    await b.run_until(datetime(2026, 12, 20, tzinfo=UTC))
    assert [i.status for i in await b.intents()] == ["failed"]
    assert b.pg.count("charge_billing_key") == 1
    [dunning] = await pending_requests_for(b.db, sched.id)
    assert dunning.status in (CallRequestStatus.created.value, CallRequestStatus.sms_sent.value)


async def test_consent_then_auto_charges_once_after_the_deadline(billing: Billing) -> None:
    b = billing
    plan = monthly(10, 1) | {"consent_hours": 48}
    sched = await b.schedule(plan, 20_000, "관리비", mode="consent_then_auto")
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
    await b.schedule(monthly(3, 2), 10_000, "구독")
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


@pytest.mark.slow
async def test_pause_skips_missed_cycles_and_cancel_stops(billing: Billing) -> None:
    b = billing
    sched = await b.schedule(monthly(15, 6), 10_000, "구독")
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


@pytest.mark.parametrize("mode", ["consent", "dunning"])
async def test_a_worker_dying_after_creating_a_call_request_does_not_send_a_second(
    billing: Billing, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request's id is reserved in the job first: the worker that takes over after
    a crash right after ``create`` finds that request instead of creating another (and
    texting the payer twice)."""
    b = billing
    sched = await b.schedule(
        monthly(5, 1), 30_000, "학원비", mode="consent" if mode == "consent" else "auto"
    )
    b.pg.script("charge_billing_key", Outcome.hard_decline)
    create = b.services.requests.create
    crashes = [1]

    async def create_then_die(*args: object, **kwargs: object) -> object:
        made = await create(*args, **kwargs)  # type: ignore[arg-type]
        if crashes:
            crashes.pop()
            raise RuntimeError("the worker died here")
        return made

    monkeypatch.setattr(b.services.requests, "create", create_then_die)
    await b.run_until(datetime(2026, 12, 5, 12, tzinfo=UTC))
    assert not crashes  # it did die once
    await b.run_until(datetime(2026, 12, 7, tzinfo=UTC))  # the job is retried (5 min later)
    [request] = await pending_requests_for(b.db, sched.id)
    async with b.db.sessions() as s:
        made = list(
            await s.scalars(select(CallRequest).where(CallRequest.customer_id == b.customer_id))
        )
        texts = await s.scalar(
            select(func.count())
            .select_from(SmsMessage)
            .where(SmsMessage.call_request_id.in_([r.id for r in made]))
        )
    assert [r.id for r in made] == [request.id]  # one request, the one the job knows
    assert texts == 1
