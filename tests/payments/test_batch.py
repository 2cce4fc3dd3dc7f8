"""ChargeBatch: many charges in three transactions, with the charger's guarantees —
order ids committed before the requests, unknown outcomes resolved by lookup (never a
second charge), refused rows not spoiling the others. Sandbox PG over HTTP, SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from ivr.clock import SystemClock
from ivr.domain.states import PaymentIntentStatus
from ivr.errors import ArspayError
from ivr.gateways.portone import PortOneGateway
from ivr.payments.batch import ChargeBatch, NewCharge, Opened
from ivr.payments.charger import ChargePolicy, Charger
from ivr.payments.service import PaymentService
from ivr.store.db import Database
from ivr.store.tables import PaymentAttempt, PaymentIntent
from tests.gateways.support import Sandbox, connector
from tests.payments.support import merchant_with_cards

pytestmark = pytest.mark.anyio

OK, TIMEOUT_ONCE, SOFT = "4111111111111111", "4000000000003220", "4000000000009995"


@pytest.fixture
async def pg(sandbox: Sandbox) -> AsyncIterator[PortOneGateway]:
    async with connector(sandbox.url, timeout_s=1.0) as gateway:
        yield gateway


async def test_a_batch_charges_each_row_once_and_unknowns_are_looked_up(
    db: Database, pg: PortOneGateway, sandbox: Sandbox
) -> None:
    clock = SystemClock()
    mid, cards = await merchant_with_cards(db, pg, [OK, TIMEOUT_ONCE, SOFT])
    batch = ChargeBatch(clock, pg, PaymentService(db, clock, pg), ChargePolicy())
    rows = [
        NewCharge(mid, cards[OK], 1_000, "a", 0, "bulk", "test"),
        NewCharge(mid, "card_missing", 1_000, "b", 0, "bulk", "test"),
        NewCharge(mid, cards[TIMEOUT_ONCE], 2_000, "c", 0, "bulk", "test"),
        NewCharge(mid, cards[SOFT], 3_000, "d", 0, "bulk", "test"),
        NewCharge(mid, cards[OK], 50, "e", 0, "bulk", "test"),  # below the minimum
    ]
    async with db.transaction() as s:
        opened = await batch.open_in(s, rows)
    assert [type(o).__name__ for o in opened] == [
        "Opened", "NotFound", "Opened", "Opened", "InvalidInput",
    ]  # fmt: skip
    ok = [o for o in opened if isinstance(o, Opened)]
    assert all(isinstance(o, ArspayError) or o.request for o in opened)
    # the order ids were committed before any request
    async with db.sessions() as s:
        before = list(await s.scalars(select(PaymentAttempt)))
    assert {a.status for a in before} == {"pending"}
    assert all(a.sent_at is not None for a in before)
    answers = [await batch.send(o) for o in ok]
    async with db.transaction() as s:
        statuses = await batch.settle_in(s, answers)
    assert list(statuses.values()) == [
        PaymentIntentStatus.succeeded,
        PaymentIntentStatus.processing,  # timed out after the PG recorded it: unknown
        PaymentIntentStatus.failed,  # soft decline
    ]
    charger = Charger(db, clock, pg, ChargePolicy(blind_backoff_s=0.01))
    assert await charger.drive(ok[1].intent_id) is PaymentIntentStatus.succeeded
    async with db.sessions() as s:
        intents = list(await s.scalars(select(PaymentIntent)))
        attempts = list(await s.scalars(select(PaymentAttempt)))
    assert len(intents) == 3
    assert len(attempts) == 3  # the unknown one was looked up, not charged again
    summary = await sandbox.summary()
    assert summary["paid"] == 2
    assert summary["charge_requests"] == 3


async def test_settling_twice_changes_nothing(db: Database, pg: PortOneGateway) -> None:
    clock = SystemClock()
    mid, cards = await merchant_with_cards(db, pg, [OK])
    batch = ChargeBatch(clock, pg, PaymentService(db, clock, pg))
    async with db.transaction() as s:
        (opened,) = await batch.open_in(s, [NewCharge(mid, cards[OK], 1_000, "a", 0, "api", "t")])
    assert isinstance(opened, Opened)
    answer = await batch.send(opened)
    async with db.transaction() as s:
        first = await batch.settle_in(s, [answer])
    async with db.transaction() as s:
        again = await batch.settle_in(s, [answer])
    assert first == again == {opened.intent_id: PaymentIntentStatus.succeeded}
