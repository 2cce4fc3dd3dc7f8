"""The charging engine against the sandbox PG over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ivr.clock import FakeClock, SystemClock
from ivr.domain.states import PaymentIntentStatus
from ivr.errors import Conflict, InvalidInput
from ivr.gateways.contract import ChargeRequest
from ivr.gateways.fake import FakeGateway, Outcome
from ivr.gateways.portone import PortOneGateway
from ivr.payments.charger import ChargePolicy, Charger
from ivr.payments.service import PaymentService
from ivr.store.db import Database
from ivr.store.tables import PaymentAttempt, PaymentIntent
from tests.gateways.support import Sandbox, connector
from tests.payments.support import merchant_with_cards

pytestmark = pytest.mark.anyio

OK, TIMEOUT_ONCE, SOFT, PG_5XX = (
    "4111111111111111",
    "4000000000003220",
    "4000000000009995",
    "4000000000000119",
)


@pytest.fixture
async def pg(sandbox: Sandbox) -> AsyncIterator[PortOneGateway]:
    async with connector(sandbox.url, timeout_s=1.0) as gateway:
        yield gateway


async def attempts(db: Database, intent_id: str) -> list[PaymentAttempt]:
    async with db.sessions() as s:
        q = select(PaymentAttempt).where(PaymentAttempt.intent_id == intent_id)
        return list(await s.scalars(q.order_by(PaymentAttempt.created_at)))


async def charge(db: Database, pg: PortOneGateway, number: str, amount: int = 53_000):
    mid, cards = await merchant_with_cards(db, pg, [number])
    payments = PaymentService(db, SystemClock(), pg)
    intent = await payments.create_intent(mid, cards[number], amount=amount, order_name="임플란트")
    charger = Charger(db, SystemClock(), pg, ChargePolicy(blind_backoff_s=0.01))
    return mid, intent, payments, charger, await charger.drive(intent.id)


async def test_a_charge_succeeds_once(db: Database, pg: PortOneGateway, sandbox: Sandbox) -> None:
    _, intent, _, _, status = await charge(db, pg, OK)
    assert status is PaymentIntentStatus.succeeded
    [attempt] = await attempts(db, intent.id)
    assert attempt.status == "succeeded"
    assert attempt.approval_no
    [payment] = (await sandbox.ledger(attempt.order_id))["payments"]
    assert payment["status"] == "paid"


async def test_timeout_after_recording_is_resolved_by_lookup(
    db: Database, pg: PortOneGateway, sandbox: Sandbox
) -> None:
    _, intent, _, _, status = await charge(db, pg, TIMEOUT_ONCE)
    assert status is PaymentIntentStatus.succeeded
    [attempt] = await attempts(db, intent.id)  # one attempt: unknown -> succeeded by find
    assert attempt.status == "succeeded"
    summary = await sandbox.summary()
    assert summary["paid"] == 1, summary  # exactly one charge in the ledger


async def test_soft_decline_fails_without_retry(db: Database, pg: PortOneGateway) -> None:
    _, intent, _, _, status = await charge(db, pg, SOFT)
    assert status is PaymentIntentStatus.failed
    [attempt] = await attempts(db, intent.id)
    assert (attempt.status, attempt.decline_class) == ("failed", "soft")
    assert attempt.decline_code in ("insufficient_funds", "limit_exceeded")


def lost_requests(pg: PortOneGateway) -> FakeGateway:
    """The real sandbox, except every charge request is lost on the way (a 5xx or a
    reset before the PG recorded it): the engine only learns that the outcome is unknown."""
    return FakeGateway(inner=pg).always("charge_billing_key", Outcome.timeout)


async def test_an_order_the_pg_never_sees_is_resent_under_its_order_id_then_given_up(
    db: Database, pg: PortOneGateway, sandbox: Sandbox
) -> None:
    """Every request is lost before the PG records it. The charger never invents a
    second order id: it waits out the settle window, re-sends the same order id, and
    after the give-up time fails the intent — nothing was charged."""
    mid, cards = await merchant_with_cards(db, pg, [OK])
    clock = FakeClock(datetime(2026, 12, 1, tzinfo=UTC))
    intent = await PaymentService(db, clock, pg).create_intent(
        mid, cards[OK], amount=9_900, order_name="x"
    )
    policy = ChargePolicy(blind_backoff_s=0.01, settle_s=120, give_up_s=600)
    charger = Charger(db, clock, lost_requests(pg), policy)
    assert await charger.drive(intent.id) is PaymentIntentStatus.processing
    assert await charger.drive(intent.id) is PaymentIntentStatus.processing  # in flight
    [row] = await attempts(db, intent.id)
    assert (row.status, row.sends) == ("unknown", 1)
    clock.advance(timedelta(seconds=121))  # not at the PG, long after the send: re-send
    assert await charger.drive(intent.id) is PaymentIntentStatus.processing
    [row] = await attempts(db, intent.id)
    assert (row.status, row.sends) == ("unknown", 2)
    clock.advance(timedelta(seconds=600))
    assert await charger.drive(intent.id) is PaymentIntentStatus.failed
    [row] = await attempts(db, intent.id)  # one order id from first to last
    assert (row.status, row.decline_code, row.sends) == ("failed", "not_at_pg", 2)
    assert (await sandbox.summary())["paid"] == 0


async def test_partial_then_full_refund_and_over_refund_rejected(
    db: Database, pg: PortOneGateway, sandbox: Sandbox
) -> None:
    mid, intent, payments, _, status = await charge(db, pg, OK, amount=50_000)
    assert status is PaymentIntentStatus.succeeded
    await payments.refunds.refund(mid, intent.id, amount=20_000)
    with pytest.raises(InvalidInput, match="exceeds the refundable 30000"):
        await payments.refunds.refund(mid, intent.id, amount=30_001)
    await payments.refunds.refund(mid, intent.id)  # the rest
    async with db.sessions() as s:
        row = await s.get(PaymentIntent, intent.id)
    assert row is not None
    assert (row.status, row.refunded_amount) == ("refunded", 50_000)
    with pytest.raises(Conflict, match="nothing to refund"):
        await payments.refunds.refund(mid, intent.id, amount=1)
    [attempt] = await attempts(db, intent.id)
    [payment] = (await sandbox.ledger(attempt.order_id))["payments"]
    assert payment["cancel_amount"] == 50_000


async def test_a_crash_after_saving_the_attempt_is_recovered_without_double_charge(
    db: Database, pg: PortOneGateway, sandbox: Sandbox
) -> None:
    mid, cards = await merchant_with_cards(db, pg, [OK, "4242424242424242"])
    clock = FakeClock(datetime(2026, 12, 1, tzinfo=UTC))
    payments = PaymentService(db, clock, pg)
    charger = Charger(db, clock, pg)
    # A: attempt saved, its send claimed and sent, then the process died before
    # recording the answer.
    a = await payments.create_intent(mid, cards[OK], amount=10_000, order_name="a")
    step = await charger._next_step(a.id)
    assert isinstance(step, PaymentAttempt)
    assert await charger._claim(step.id, 0)
    await pg.charge_billing_key(
        ChargeRequest(await _uid(db, cards[OK]), step.order_id, 10_000, "a")
    )
    # B: attempt saved, the process died before claiming a send.
    b = await payments.create_intent(mid, cards["4242424242424242"], amount=20_000, order_name="b")
    step_b = await charger._next_step(b.id)
    assert isinstance(step_b, PaymentAttempt)
    # Restart, once the settle window is over: the sweep resolves both. A (sent) by
    # lookup -> paid, never sent again; B (never sent) is sent now with its saved order id.
    clock.advance(timedelta(seconds=ChargePolicy().settle_s + 1))
    assert await Charger(db, clock, pg).reconcile() == 2
    for intent_id in (a.id, b.id):
        async with db.sessions() as s:
            row = await s.get(PaymentIntent, intent_id)
        assert row is not None
        assert row.status == "succeeded"
    assert [(x.status, x.sends) for x in await attempts(db, a.id)] == [("succeeded", 1)]
    assert [(x.status, x.sends) for x in await attempts(db, b.id)] == [("succeeded", 1)]
    assert (await sandbox.summary())["paid"] == 2


async def _uid(db: Database, card_id: str) -> str:
    from ivr.store.tables import Card

    async with db.sessions() as s:
        card = await s.get(Card, card_id)
    assert card is not None
    assert card.billing_key_ref is not None
    return card.billing_key_ref


async def test_the_engine_sweeper_reconciles_unknown_attempts(
    db: Database, db_url: str, pg: PortOneGateway, sandbox: Sandbox
) -> None:
    from ivr.engine import Engine, running
    from ivr.runtime import build
    from ivr.settings import load_settings

    mid, cards = await merchant_with_cards(db, pg, [TIMEOUT_ONCE])
    intent = await PaymentService(db, SystemClock(), pg).create_intent(
        mid, cards[TIMEOUT_ONCE], amount=5_000, order_name="x"
    )
    # The first request times out after the PG recorded it; a "lost" process stops there.
    charger = Charger(db, SystemClock(), pg, ChargePolicy(settle_s=0))
    step = await charger._next_step(intent.id)
    assert isinstance(step, PaymentAttempt)
    assert await charger._claim(step.id, 0)
    await charger._send(step, first=True)
    assert [a.status for a in await attempts(db, intent.id)] == ["unknown"]
    settings = load_settings(env={"ARSPAY_CONFIG": "/none", "ARSPAY_DATABASE_URL": db_url})

    async def no_flow(call: object) -> str:
        return "none"

    engine = Engine(
        build(settings, db=db),
        no_flow,
        ari=False,
        agi=False,  # type: ignore[arg-type]
        sweep_interval_s=0.05,
        charger=charger,
    )
    async with running(engine):
        for _ in range(100):
            if [a.status for a in await attempts(db, intent.id)] == ["succeeded"]:
                break
            await asyncio.sleep(0.05)
    assert [a.status for a in await attempts(db, intent.id)] == ["succeeded"]
    assert (await sandbox.summary())["paid"] == 1
