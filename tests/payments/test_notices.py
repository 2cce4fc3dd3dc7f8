"""Payer notices recorded by the payment services themselves (issue #28), on SQLite and
PostgreSQL: one notice per event however many processes drive it, none when the
merchant switched the kind off, bulk charges told in one statement, and every notice
routed into exactly one SMS row (text checked)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from ivr.clock import FakeClock
from ivr.domain.states import PaymentIntentStatus
from ivr.errors import InvalidInput
from ivr.gateways.portone import PortOneGateway
from ivr.merchants.service import MerchantService
from ivr.notify.notices.kinds import NoticeKind
from ivr.notify.notices.record import record_in
from ivr.notify.notices.router import NoticeRouter
from ivr.payments.batch import ChargeBatch, NewCharge, Opened
from ivr.payments.charger import ChargePolicy, Charger
from ivr.payments.service import PaymentService
from ivr.store.db import Database
from ivr.store.tables import Merchant, Notice, PaymentAttempt, PaymentIntent, SmsMessage
from ivr.webhooks.notices import payment_ended_in
from tests.gateways.support import Sandbox, connector
from tests.payments.support import merchant_with_cards

pytestmark = pytest.mark.anyio

OK, SOFT = "4111111111111111", "4000000000009995"
T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
async def pg(sandbox: Sandbox) -> AsyncIterator[PortOneGateway]:
    async with connector(sandbox.url, timeout_s=1.0) as gateway:
        yield gateway


async def notices(db: Database) -> list[Notice]:
    async with db.sessions() as s:
        return list(await s.scalars(select(Notice).order_by(Notice.created_at, Notice.id)))


async def messages(db: Database) -> list[SmsMessage]:
    async with db.sessions() as s:
        return list(await s.scalars(select(SmsMessage).where(SmsMessage.kind == "notice")))


def charger(db: Database, clock: FakeClock, pg: PortOneGateway) -> Charger:
    return Charger(db, clock, pg, ChargePolicy(blind_backoff_s=0.01))


async def new_intent(
    db: Database, clock: FakeClock, pg: PortOneGateway, card_id: str, mid: str, **options: object
) -> PaymentIntent:
    options = {"amount": 60_000, "order_name": "임플란트"} | options
    return await PaymentService(db, clock, pg).create_intent(mid, card_id, **options)  # type: ignore[arg-type]


async def test_concurrent_drives_tell_once_and_concurrent_routers_send_once(
    db: Database, pg: PortOneGateway
) -> None:
    clock = FakeClock(T0)
    mid, cards = await merchant_with_cards(db, pg, [OK])
    intent = await new_intent(db, clock, pg, cards[OK], mid, installment_months=3)
    drivers = [charger(db, clock, pg) for _ in range(3)]
    statuses = await asyncio.gather(*(c.drive(intent.id) for c in drivers))
    # one finishes it; another may still see the order in flight (processing)
    assert PaymentIntentStatus.succeeded in statuses
    for c in drivers:  # a finished intent driven again tells nothing
        assert await c.drive(intent.id) is PaymentIntentStatus.succeeded
    [notice] = await notices(db)
    assert (notice.kind, notice.mobile, notice.subject_id) == (
        "payment_approved", "01012340000", intent.id,
    )  # fmt: skip
    routers = [NoticeRouter(db, clock, sms_sender="1588-0000", sms_adapter="outbox")] * 2
    await asyncio.gather(*(r.route_pending() for r in routers))
    [sms] = await messages(db)
    async with db.sessions() as s:
        approval, receipt = (await s.execute(
            select(PaymentAttempt.approval_no, PaymentAttempt.receipt_url)
        )).one()  # fmt: skip
    assert receipt is not None  # the sandbox PG links its receipt page
    assert sms.body == (
        f"[행복치과] 60,000원 결제가 승인되었습니다. "
        f"(3개월 할부, 테스트카드 끝자리 1111, 승인번호 {approval}) 영수증 {receipt}"
    )
    assert (sms.to, sms.sender, sms.notice_id, sms.call_request_id) == (
        "01012340000", "1588-0000", notice.id, None,
    )  # fmt: skip
    assert (await notices(db))[0].status == "routed"


async def test_an_event_reported_twice_records_one_notice(db: Database, pg: PortOneGateway) -> None:
    """The hook itself (the charger calls it once, on the transition): a second call —
    a replayed event, another engine racing — adds nothing (the dedupe key), and does
    not fail the transaction it runs in."""
    clock = FakeClock(T0)
    mid, cards = await merchant_with_cards(db, pg, [OK])
    intent = await new_intent(db, clock, pg, cards[OK], mid)
    await charger(db, clock, pg).drive(intent.id)

    async def report() -> None:
        async with db.transaction() as s:
            row = await s.get(PaymentIntent, intent.id)
            attempt = await s.scalar(select(PaymentAttempt))
            assert row is not None
            await payment_ended_in(s, clock, row, attempt)

    await report()
    await asyncio.gather(report(), report())
    assert [n.kind for n in await notices(db)] == ["payment_approved"]


async def test_racing_recorders_of_one_key_make_one_notice(db: Database) -> None:
    clock = FakeClock(T0)
    async with db.transaction() as s:
        s.add(Merchant(id="mer_1", name="행복치과", status="active", settings={}, created_at=T0))

    async def record() -> bool:
        async with db.transaction() as s:
            merchant = await s.get(Merchant, "mer_1")
            assert merchant is not None
            return await record_in(
                s, clock, NoticeKind.refund, merchant=merchant, mobile="01012345678",
                subject_id="rf_1", dedupe_key="refund:rf_1",
                variables={"amount": 1_000, "full": True, "paid_amount": 1_000,
                           "refunded_amount": 1_000},
            )  # fmt: skip

    added = await asyncio.gather(*(record() for _ in range(4)))
    assert sorted(added) == [False, False, False, True]
    assert len(await notices(db)) == 1


async def test_a_declined_charge_tells_why_but_a_scheduled_one_waits_for_its_retries(
    db: Database, pg: PortOneGateway
) -> None:
    clock = FakeClock(T0)
    mid, cards = await merchant_with_cards(db, pg, [SOFT])
    api = await new_intent(db, clock, pg, cards[SOFT], mid, amount=30_000)
    scheduled = await new_intent(db, clock, pg, cards[SOFT], mid, source="schedule")
    for intent in (api, scheduled):
        assert await charger(db, clock, pg).drive(intent.id) is PaymentIntentStatus.failed
    [notice] = await notices(db)
    assert (notice.kind, notice.subject_id) == ("payment_failed", api.id)
    await NoticeRouter(db, clock, sms_sender="1588-0000", sms_adapter="outbox").route_pending()
    [sms] = await messages(db)
    assert sms.body == (
        "[행복치과] 30,000원 결제가 승인되지 않았습니다(청구되지 않음). 사유: 잔액 부족 또는 "
        "한도 초과. 잔액·한도를 확인하신 뒤 다시 결제하시거나 다른 카드를 이용해 주세요."
    )


async def test_switches_are_merchant_settings_and_off_tells_nothing(
    db: Database, pg: PortOneGateway
) -> None:
    clock = FakeClock(T0)
    mid, cards = await merchant_with_cards(db, pg, [OK])
    merchants = MerchantService(db, clock)
    policy = await merchants.set_policy(
        mid, {"notices": {"payment_approved": False, "prenotice_days": 5}}, actor="test"
    )
    assert (policy.notices.payment_approved, policy.notices.payment_failed) == (False, True)
    assert policy.notices.prenotice_days == 5
    for wrong in ({"payment_aproved": False}, {"prenotice_days": 0}):
        with pytest.raises(InvalidInput, match="notices"):
            await merchants.set_policy(mid, {"notices": wrong}, actor="test")
    intent = await new_intent(db, clock, pg, cards[OK], mid)
    assert await charger(db, clock, pg).drive(intent.id) is PaymentIntentStatus.succeeded
    await PaymentService(db, clock, pg).refunds.refund(mid, intent.id)
    assert [n.kind for n in await notices(db)] == ["refund"]  # refund is still on


async def test_a_bulk_batch_tells_each_payer_in_one_statement(
    db: Database, pg: PortOneGateway
) -> None:
    clock = FakeClock(T0)
    mid, cards = await merchant_with_cards(db, pg, [OK, SOFT])
    batch = ChargeBatch(clock, pg, PaymentService(db, clock, pg), ChargePolicy())
    rows = [NewCharge(mid, cards[OK], 1_000, "a", 0, "bulk", "test"),
            NewCharge(mid, cards[SOFT], 3_000, "b", 0, "bulk", "test")]  # fmt: skip
    async with db.transaction() as s:
        opened = [o for o in await batch.open_in(s, rows) if isinstance(o, Opened)]
    answers = [await batch.send(o) for o in opened]
    async with db.transaction() as s:
        await batch.settle_in(s, answers)
    async with db.transaction() as s:
        await batch.settle_in(s, answers)  # settled again: nothing more
    told = {n.subject_id: (n.kind, n.mobile) for n in await notices(db)}
    assert told == {
        opened[0].intent_id: ("payment_approved", "01012340000"),
        opened[1].intent_id: ("payment_failed", "01012340001"),
    }
