"""The charger behind an open circuit breaker (issue #27, failover): a billing-key charge
of a down account is not sent, keeps its attempt and order id, and resumes under that
same order id once the breaker lets requests through — one charge at the PG, never two.
Fake time, the in-memory PG (its ``orders`` are its ledger)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from ivr.clock import FakeClock
from ivr.domain.states import PaymentIntentStatus
from ivr.gateways.breaker import BreakerPolicy, BreakerState, CircuitBreaker, GuardedGateway
from ivr.gateways.contract import ChargeRequest, GatewayCharge, PgState
from ivr.gateways.errors import CircuitOpen, GatewayUnavailable
from ivr.gateways.fake import FakeGateway, Outcome
from ivr.payments.charger import ChargePolicy, Charger
from ivr.payments.service import PaymentService
from ivr.store.db import Database
from ivr.store.tables import PaymentAttempt
from tests.payments.support import merchant_with_cards

pytestmark = pytest.mark.anyio

OK = "4111111111111111"
SETTLE_S, GIVE_UP_S = 120.0, 3600.0


class Guarded(GuardedGateway):
    """Counts the charges its breaker refused."""

    refused = 0

    async def charge_billing_key(self, req: ChargeRequest) -> GatewayCharge:
        try:
            return await super().charge_billing_key(req)
        except CircuitOpen:
            self.refused += 1
            raise


async def attempts(db: Database, intent_id: str) -> list[PaymentAttempt]:
    async with db.sessions() as s:
        q = select(PaymentAttempt).where(PaymentAttempt.intent_id == intent_id)
        return list(await s.scalars(q.order_by(PaymentAttempt.created_at)))


async def refused_while_open(
    db: Database, open_s: float
) -> tuple[FakeClock, FakeGateway, Guarded, Charger, str, str]:
    """An intent driven while its account's breaker is open: (clock, pg, guarded,
    charger, intent id, its order id)."""
    clock = FakeClock(datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    pg = FakeGateway(clock=clock)
    mid, cards = await merchant_with_cards(db, pg, [OK])
    breaker = CircuitBreaker.on_clock("primary", BreakerPolicy(failures=2, open_s=open_s), clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.open
    guarded = Guarded(pg, breaker)
    intent = await PaymentService(db, clock, guarded).create_intent(
        mid, cards[OK], amount=33_000, order_name="임플란트"
    )
    policy = ChargePolicy(blind_backoff_s=0.001, settle_s=SETTLE_S, give_up_s=GIVE_UP_S)
    charger = Charger(db, clock, guarded, policy)
    calls = len(pg.calls)
    assert await charger.drive(intent.id) is PaymentIntentStatus.processing
    assert len(pg.calls) == calls  # nothing reached the PG: no charge, no lookup
    assert guarded.refused == 1  # and no blind retry into the open breaker
    [row] = await attempts(db, intent.id)
    assert (row.status, row.sends) == ("unknown", 1)
    return clock, pg, guarded, charger, intent.id, row.order_id


async def test_a_charge_refused_by_the_breaker_resumes_under_its_order_id(db: Database) -> None:
    clock, pg, guarded, charger, intent_id, order_id = await refused_while_open(db, open_s=600)
    # The settle window passes while the breaker is still open: the sweep's lookup is
    # refused too, the attempt waits.
    clock.advance(SETTLE_S + 1)
    assert await charger.reconcile() == 1
    assert pg.count("charge_billing_key") == pg.count("find") == 0
    assert [(a.status, a.order_id) for a in await attempts(db, intent_id)] == [
        ("unknown", order_id)
    ]
    # The breaker half-opens: the lookup is its probe (the PG does not know the order,
    # the breaker closes), then the same order id is sent, once.
    clock.advance(600)
    assert await charger.reconcile() == 1
    assert guarded.breaker.state is BreakerState.closed
    [row] = await attempts(db, intent_id)
    assert (row.status, row.order_id, row.sends) == ("succeeded", order_id, 2)
    assert [c.ref for c in pg.calls if c.op == "charge_billing_key"] == [order_id]
    paid = [o for o in pg.orders.values() if o.state is PgState.paid]
    assert [(o.order_id, o.amount) for o in paid] == [(order_id, 33_000)]  # charged once
    assert await charger.drive(intent_id) is PaymentIntentStatus.succeeded


async def test_a_closed_breaker_before_the_settle_window_still_waits_for_it(
    db: Database,
) -> None:
    """The breaker closes sooner than ``settle_s``: the lookup answers "not known", but
    the order id is re-sent only once the settle window is over (the charger does not
    trust CircuitOpen's "not sent" more than any other unknown outcome)."""
    clock, pg, guarded, charger, intent_id, order_id = await refused_while_open(db, open_s=30)
    clock.advance(31)
    assert await charger.drive(intent_id) is PaymentIntentStatus.processing
    assert guarded.breaker.state is BreakerState.closed  # the lookup was the probe
    assert (pg.count("find"), pg.count("charge_billing_key")) == (1, 0)
    clock.advance(SETTLE_S)
    assert await charger.drive(intent_id) is PaymentIntentStatus.succeeded
    assert [c.ref for c in pg.calls if c.op == "charge_billing_key"] == [order_id]


async def test_an_outage_longer_than_the_give_up_time_fails_uncharged(db: Database) -> None:
    clock, pg, _guarded, charger, intent_id, order_id = await refused_while_open(db, open_s=30)
    pg.always("find", Outcome.unavailable)  # the probe fails too: open again
    clock.advance(GIVE_UP_S + 1)
    assert await charger.drive(intent_id) is PaymentIntentStatus.processing  # still down
    pg.always("find", None)  # the account is back: it never saw the order
    clock.advance(60)
    assert await charger.drive(intent_id) is PaymentIntentStatus.failed
    [row] = await attempts(db, intent_id)
    assert (row.status, row.decline_code, row.order_id) == ("failed", "not_at_pg", order_id)
    assert pg.count("charge_billing_key") == 0
    assert pg.orders == {}


def test_no_blind_retry_into_an_open_breaker() -> None:
    """The charger's and the bulk batch's blind retries of an unsent request."""
    policy = ChargePolicy(blind_retries=3)
    assert policy.blind_retry(GatewayUnavailable("refused", retry_safe=True), 0)
    assert not policy.blind_retry(GatewayUnavailable("refused", retry_safe=True), 3)
    assert not policy.blind_retry(GatewayUnavailable("bad URL", retry_safe=False), 0)
    assert not policy.blind_retry(CircuitOpen("primary"), 0)
