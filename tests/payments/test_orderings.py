"""Exactly once under every PG timing (issue #25): the charger and the refunder against
the sandbox PG playing each ordering a real PG produces — late recording, lost answers,
lost requests, answers after the client gave up, payments in progress, 5xx before and
after recording — chosen by deterministic trigger. The engine's clock is a FakeClock
(its settle window and give-up time move only when a test says so); the sandbox's
delays are real.

Each test checks the sandbox's own ledger: how many payments an order id got, and how
much was cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from ivr.clock import FakeClock
from ivr.domain.states import PaymentIntentStatus
from ivr.errors import Conflict
from ivr.gateways.contract import ChargeRequest
from ivr.gateways.errors import CancelRefused
from ivr.gateways.portone import PortOneGateway
from ivr.payments.charger import ChargePolicy, Charger
from ivr.payments.service import PaymentService
from ivr.store.db import Database
from ivr.store.tables import Card, PaymentAttempt, PaymentIntent, Refund
from tests.gateways.support import Sandbox, connector
from tests.payments.support import merchant_with_cards

pytestmark = pytest.mark.anyio

CARD = "4111111111111111"
TIMEOUT_S = 0.5  # the client's patience; the sandbox's slow orderings take 1 s
SLOW_MS = 1_000
POLICY = ChargePolicy(blind_backoff_s=0.01, settle_s=120, give_up_s=3_600)


@pytest.fixture
async def pg(sandbox: Sandbox) -> AsyncIterator[PortOneGateway]:
    async with connector(sandbox.url, timeout_s=TIMEOUT_S, total_timeout_s=TIMEOUT_S) as gateway:
        yield gateway


class Shop:
    """A merchant with one registered card; intents charged on a FakeClock."""

    def __init__(self, db: Database, pg: PortOneGateway, sandbox: Sandbox) -> None:
        self.db, self.pg, self.sandbox = db, pg, sandbox
        self.clock = FakeClock(datetime(2026, 12, 1, tzinfo=UTC))
        self.payments = PaymentService(db, self.clock, pg, POLICY)
        self.charger = Charger(db, self.clock, pg, POLICY)
        self.merchant_id = ""
        self.card_id = ""

    async def open(self) -> Shop:
        self.merchant_id, cards = await merchant_with_cards(self.db, self.pg, [CARD])
        self.card_id = cards[CARD]
        return self

    async def intent(self, amount: int = 50_000) -> str:
        intent = await self.payments.create_intent(
            self.merchant_id, self.card_id, amount=amount, order_name="정기결제"
        )
        return intent.id

    async def attempts(self, intent_id: str) -> list[PaymentAttempt]:
        async with self.db.sessions() as s:
            q = select(PaymentAttempt).where(PaymentAttempt.intent_id == intent_id)
            return list(await s.scalars(q.order_by(PaymentAttempt.created_at)))

    async def only_order(self, intent_id: str) -> str:
        [attempt] = await self.attempts(intent_id)
        return attempt.order_id

    async def ledger(self, order_id: str) -> dict[str, Any]:
        await self.sandbox.settled()
        return await self.sandbox.ledger(order_id)

    async def status(self, intent_id: str) -> str:
        async with self.db.sessions() as s:
            row = await s.get(PaymentIntent, intent_id)
        assert row is not None
        return row.status

    def after_settle(self) -> None:
        self.clock.advance(timedelta(seconds=POLICY.settle_s + 1))


@pytest.fixture
async def shop(db: Database, pg: PortOneGateway, sandbox: Sandbox) -> Shop:
    return await Shop(db, pg, sandbox).open()


# ---------------------------------------------------------------------------- charges


async def test_a_pg_that_records_after_the_client_gave_up_charges_once(shop: Shop) -> None:
    """The issue's case: the charge is recorded 1 s after a 0.5 s client timeout. The
    immediate lookup finds nothing — that is *not yet*, not *never*: the attempt stays
    unknown and no second order id is ever sent. (The old charger marked it
    ``not_at_pg`` and charged again under a new order id: two payments.)"""
    await shop.sandbox.fault("charge", "late", delay_ms=SLOW_MS)
    intent = await shop.intent()
    assert await shop.charger.drive(intent) is PaymentIntentStatus.processing
    [attempt] = await shop.attempts(intent)
    assert (attempt.status, attempt.sends) == ("unknown", 1)
    await shop.sandbox.settled()  # the PG records it now, long after the client left
    assert await shop.charger.drive(intent) is PaymentIntentStatus.succeeded
    ledger = await shop.ledger(attempt.order_id)
    assert (ledger["paid"], ledger["charge_requests"]) == (1, 1)
    assert (await shop.sandbox.summary())["paid_amount"] == 50_000


@pytest.mark.parametrize("ordering", ["record_then_drop", "error_after", "slow_answer"])
async def test_a_charge_recorded_but_not_answered_is_found_by_lookup(
    shop: Shop, ordering: str
) -> None:
    await shop.sandbox.fault("charge", ordering, delay_ms=SLOW_MS)
    intent = await shop.intent()
    assert await shop.charger.drive(intent) is PaymentIntentStatus.succeeded
    [attempt] = await shop.attempts(intent)
    assert (attempt.status, attempt.sends) == ("succeeded", 1)
    assert attempt.approval_no
    ledger = await shop.ledger(attempt.order_id)
    assert (ledger["paid"], ledger["charge_requests"]) == (1, 1)


async def test_a_payment_in_progress_at_the_pg_is_waited_for(shop: Shop) -> None:
    """``ready`` at the PG: in progress. Neither failed nor re-sent."""
    await shop.sandbox.fault("charge", "slow_processing", delay_ms=SLOW_MS)
    intent = await shop.intent()
    assert await shop.charger.drive(intent) is PaymentIntentStatus.processing
    order_id = await shop.only_order(intent)
    ready = await shop.pg.find(order_id)
    assert ready is not None
    assert ready.state.value == "ready"
    shop.after_settle()  # even long after: "ready" is not "unknown to the PG"
    assert await shop.charger.drive(intent) is PaymentIntentStatus.processing
    await shop.sandbox.settled()
    assert await shop.charger.drive(intent) is PaymentIntentStatus.succeeded
    assert (await shop.ledger(order_id))["charge_requests"] == 1


@pytest.mark.parametrize("ordering", ["drop_before_record", "error_before"])
async def test_a_request_lost_before_the_pg_recorded_it_is_resent_under_its_order_id(
    shop: Shop, ordering: str
) -> None:
    await shop.sandbox.fault("charge", ordering)
    intent = await shop.intent()
    assert await shop.charger.drive(intent) is PaymentIntentStatus.processing
    assert await shop.charger.drive(intent) is PaymentIntentStatus.processing  # not yet
    shop.after_settle()  # the PG positively does not know it, long after the send
    assert await shop.charger.drive(intent) is PaymentIntentStatus.succeeded
    [attempt] = await shop.attempts(intent)
    assert (attempt.status, attempt.sends) == ("succeeded", 2)
    ledger = await shop.ledger(attempt.order_id)
    assert (ledger["paid"], ledger["charge_requests"]) == (1, 2)


async def test_a_request_later_than_the_settle_window_is_still_charged_once(
    shop: Shop,
) -> None:
    """The settle window's promise broken on purpose: the first request is recorded only
    after the re-send was paid. The PG's duplicate rule refuses it: one payment."""
    await shop.sandbox.fault("charge", "late", delay_ms=1_500)
    intent = await shop.intent()
    assert await shop.charger.drive(intent) is PaymentIntentStatus.processing
    shop.after_settle()  # the engine believes no request can still land: it re-sends
    assert await shop.charger.drive(intent) is PaymentIntentStatus.succeeded
    order_id = await shop.only_order(intent)
    ledger = await shop.ledger(order_id)  # the late request arrives, and is refused
    assert (ledger["paid"], ledger["charge_requests"]) == (1, 2)
    assert [p["status"] for p in ledger["payments"]] == ["paid"]


async def test_a_resend_refused_as_a_duplicate_is_looked_up_not_declined(shop: Shop) -> None:
    """The re-send meets "order id already used" (the first request was paid after all,
    recorded while the lookup said nothing): a lookup, never a decline."""
    await shop.sandbox.fault("charge", "late", delay_ms=SLOW_MS)
    intent = await shop.intent()
    assert await shop.charger.drive(intent) is PaymentIntentStatus.processing
    [attempt] = await shop.attempts(intent)
    # Another process re-sends right as the first request lands (its claim, its send).
    assert await shop.charger._claim(attempt.id, 1)
    await shop.sandbox.settled()
    await shop.charger._send(attempt, first=False)
    assert await shop.charger.drive(intent) is PaymentIntentStatus.succeeded
    ledger = await shop.ledger(attempt.order_id)
    assert (ledger["paid"], ledger["charge_requests"]) == (1, 2)


async def test_a_decline_fails_the_intent_without_a_new_order(shop: Shop) -> None:
    intent = await shop.payments.create_intent(
        shop.merchant_id, shop.card_id, amount=9_000, order_name="x", installment_months=3
    )  # installments under 50,000 KRW: the issuer declines
    assert await shop.charger.drive(intent.id) is PaymentIntentStatus.failed
    [attempt] = await shop.attempts(intent.id)
    assert (attempt.status, attempt.decline_code) == ("failed", "installment_unavailable")


async def test_a_pg_that_never_records_the_order_ends_it_failed_uncharged(shop: Shop) -> None:
    await shop.sandbox.fault("charge", "drop_before_record", count=1_000)
    intent = await shop.intent()
    assert await shop.charger.drive(intent) is PaymentIntentStatus.processing
    for _ in range(3):
        shop.after_settle()
        assert await shop.charger.drive(intent) is PaymentIntentStatus.processing
    shop.clock.advance(timedelta(seconds=POLICY.give_up_s))
    assert await shop.charger.drive(intent) is PaymentIntentStatus.failed
    [attempt] = await shop.attempts(intent)
    assert (attempt.decline_code, attempt.sends) == ("not_at_pg", 4)
    assert (await shop.sandbox.summary())["paid"] == 0


async def test_drivers_racing_on_one_intent_send_one_order_once(shop: Shop) -> None:
    await shop.sandbox.fault("charge", "late", delay_ms=SLOW_MS)
    intent = await shop.intent()
    results = await asyncio.gather(*(shop.charger.drive(intent) for _ in range(8)))
    assert set(results) == {PaymentIntentStatus.processing}
    [attempt] = await shop.attempts(intent)
    assert attempt.sends == 1
    await shop.sandbox.settled()
    results = await asyncio.gather(*(shop.charger.drive(intent) for _ in range(8)))
    assert set(results) == {PaymentIntentStatus.succeeded}
    ledger = await shop.ledger(attempt.order_id)
    assert (ledger["paid"], ledger["charge_requests"]) == (1, 1)


async def test_an_intent_left_created_by_a_dead_process_is_driven_by_the_sweep(
    shop: Shop,
) -> None:
    """A crash between creating an intent and driving it used to leave it ``created``
    forever (and block the billing-key reaper)."""
    intent = await shop.intent()
    assert await shop.charger.reconcile() == 0  # its creator may still be driving it
    shop.after_settle()
    assert await shop.charger.reconcile() == 1
    assert await shop.status(intent) == "succeeded"
    assert (await shop.ledger(await shop.only_order(intent)))["paid"] == 1


async def test_an_intent_created_long_ago_and_never_sent_fails_uncharged(shop: Shop) -> None:
    intent = await shop.intent()
    shop.clock.advance(timedelta(seconds=POLICY.give_up_s + 1))
    assert await shop.charger.reconcile() == 1
    assert await shop.status(intent) == "failed"
    [attempt] = await shop.attempts(intent)
    assert (attempt.status, attempt.decline_code, attempt.sends) == ("failed", "not_sent", 0)
    assert (await shop.sandbox.summary())["charge_requests"] == 0


async def test_the_sweep_finishes_an_unknown_attempt_a_killed_process_left(shop: Shop) -> None:
    """The process claimed the send and died with the request in flight."""
    intent = await shop.intent()
    step = await shop.charger._next_step(intent)
    assert isinstance(step, PaymentAttempt)
    assert await shop.charger._claim(step.id, 0)
    async with shop.db.sessions() as s:
        card = await s.get(Card, shop.card_id)
    assert card is not None
    assert card.billing_key_ref is not None
    await shop.pg.charge_billing_key(
        ChargeRequest(card.billing_key_ref, step.order_id, step.amount, "정기결제")
    )  # ... the request reached the PG; its process is gone
    shop.after_settle()
    assert await shop.charger.reconcile() == 1
    assert await shop.status(intent) == "succeeded"
    assert (await shop.ledger(step.order_id))["charge_requests"] == 1


# ---------------------------------------------------------------------------- refunds


async def paid_intent(shop: Shop, amount: int = 50_000) -> str:
    intent = await shop.intent(amount)
    assert await shop.charger.drive(intent) is PaymentIntentStatus.succeeded
    return intent


async def cancelled(shop: Shop, intent: str) -> int:
    ledger = await shop.ledger(await shop.only_order(intent))
    [payment] = ledger["payments"]
    return int(payment["cancel_amount"])


async def refunded(shop: Shop, intent: str) -> tuple[str, int]:
    async with shop.db.sessions() as s:
        row = await s.get(PaymentIntent, intent)
    assert row is not None
    return row.status, row.refunded_amount


@pytest.mark.parametrize("ordering", ["record_then_drop", "error_after", "slow_answer"])
async def test_a_refund_applied_but_not_answered_is_found_by_lookup(
    shop: Shop, ordering: str
) -> None:
    """Before: a cancel that timed out was marked failed although the PG cancelled it."""
    intent = await paid_intent(shop)
    await shop.sandbox.fault("cancel", ordering, delay_ms=SLOW_MS)
    refund = await shop.payments.refunds.refund(shop.merchant_id, intent, amount=20_000)
    assert refund.status == "succeeded"
    assert await refunded(shop, intent) == ("partially_refunded", 20_000)
    assert await cancelled(shop, intent) == 20_000


async def test_a_refund_recorded_late_stays_unknown_then_settles(shop: Shop) -> None:
    intent = await paid_intent(shop)
    await shop.sandbox.fault("cancel", "late", delay_ms=SLOW_MS)
    refund = await shop.payments.refunds.refund(shop.merchant_id, intent)
    assert refund.status == "unknown"
    with pytest.raises(Conflict, match="in progress"):  # one open refund per payment
        await shop.payments.refunds.refund(shop.merchant_id, intent, amount=1)
    await shop.sandbox.settled()
    shop.after_settle()
    assert await shop.payments.refunds.reconcile() == 1
    assert await refunded(shop, intent) == ("refunded", 50_000)
    assert await cancelled(shop, intent) == 50_000


@pytest.mark.parametrize("ordering", ["drop_before_record", "error_before"])
async def test_a_refund_lost_before_the_pg_is_resent_and_applied_once(
    shop: Shop, ordering: str
) -> None:
    intent = await paid_intent(shop)
    await shop.sandbox.fault("cancel", ordering)
    refund = await shop.payments.refunds.refund(shop.merchant_id, intent, amount=30_000)
    assert refund.status == "unknown"
    assert await shop.payments.refunds.reconcile() == 0  # not yet: maybe in flight
    shop.after_settle()
    assert await shop.payments.refunds.reconcile() == 1
    async with shop.db.sessions() as s:
        row = await s.get(Refund, refund.id)
    assert row is not None
    assert (row.status, row.sends) == ("succeeded", 2)
    assert await cancelled(shop, intent) == 30_000


async def test_a_refund_later_than_the_settle_window_is_applied_once(shop: Shop) -> None:
    """The first cancel lands only after the re-send: the checksum (the balance both
    sends carry) makes the PG refuse whichever comes second."""
    intent = await paid_intent(shop)
    await shop.sandbox.fault("cancel", "late", delay_ms=1_500)
    refund = await shop.payments.refunds.refund(shop.merchant_id, intent, amount=10_000)
    shop.after_settle()
    assert await shop.payments.refunds.reconcile() == 1  # re-sent, applied
    await shop.sandbox.settled()  # the late one arrives: refused by its checksum
    assert await cancelled(shop, intent) == 10_000
    assert await refunded(shop, intent) == ("partially_refunded", 10_000)
    async with shop.db.sessions() as s:
        row = await s.get(Refund, refund.id)
    assert row is not None
    assert row.status == "succeeded"


async def test_a_refund_left_pending_by_a_crash_is_reconciled(shop: Shop) -> None:
    intent = await paid_intent(shop)
    refunder = shop.payments.refunds

    async def crash(*args: object, **kwargs: object) -> None:
        raise asyncio.CancelledError  # killed right after the row was committed

    refunder._send = crash  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await shop.payments.refunds.refund(shop.merchant_id, intent, amount=5_000)
    del refunder._send
    async with shop.db.sessions() as s:
        [row] = list(await s.scalars(select(Refund)))
    assert row.status == "pending"
    shop.after_settle()
    assert await shop.payments.refunds.reconcile() == 1
    assert await refunded(shop, intent) == ("partially_refunded", 5_000)
    assert await cancelled(shop, intent) == 5_000


async def test_a_refund_refused_by_the_pg_fails_and_says_why(shop: Shop) -> None:
    intent = await paid_intent(shop)
    order_id = await shop.only_order(intent)
    # Someone cancelled part of it at the PG directly: our balance is stale.
    from ivr.gateways.contract import CancelRequest

    await shop.pg.cancel(CancelRequest(order_id, "console", checksum=50_000, amount=1_000))
    with pytest.raises(CancelRefused):
        await shop.payments.refunds.refund(shop.merchant_id, intent, amount=2_000)
    async with shop.db.sessions() as s:
        [row] = list(await s.scalars(select(Refund)))
    assert (row.status, row.error_code) == ("failed", "checksum_mismatch")
    assert await refunded(shop, intent) == ("succeeded", 0)
    assert await cancelled(shop, intent) == 1_000
