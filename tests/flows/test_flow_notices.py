"""Payer notices (issue #28, docs/notices.md) produced by the real events on the
in-process stack: a registration call, a payment call (approved, declined, left
pending and settled by the sweeper), a refund through the payment service, a schedule's
pre-notice, an expired request — each text checked exactly, SMS or LMS by its EUC-KR
length, and nothing when the merchant switched the kind off."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.notify.sms.segments import euckr_bytes, sms_format
from ivr.store.tables import Card, Notice, PaymentAttempt, PaymentIntent, SmsMessage
from ivr.telephony.fake import Press

from .conftest import Stack
from .test_flow_payment import VERIFY, register, set_policy
from .test_flow_registration import card_keys

pytestmark = pytest.mark.anyio

CANARY = "4012888888881881"  # a card number that must never reach a notice


def leaks(text: str) -> bool:
    """Whether ``text`` holds the canary card number or more of it than its last 4."""
    return CANARY in text or CANARY[:6] in text or CANARY[-8:] in text


async def notices(stack: Stack) -> list[Notice]:
    async with stack.db.sessions() as s:
        return list(await s.scalars(select(Notice).order_by(Notice.created_at, Notice.id)))


async def texts(stack: Stack) -> dict[str, str]:
    """notice kind -> its SMS body, once the outbox has routed and kept them."""
    await stack.runtime.services.outbox.deliver_pending()
    async with stack.db.sessions() as s:
        rows = (
            await s.execute(
                select(Notice.kind, SmsMessage.body)
                .join(SmsMessage, SmsMessage.notice_id == Notice.id)
                .where(SmsMessage.kind == "notice")
            )
        ).all()
    kinds = [k for k, _ in rows]
    assert len(kinds) == len(set(kinds)), kinds  # one message per notice kind here
    return {k: body for k, body in rows}


async def the_card(stack: Stack) -> Card:
    async with stack.db.sessions() as s:
        card = (await s.scalars(select(Card).order_by(Card.created_at))).first()
    assert card is not None
    return card


async def approval_of(stack: Stack) -> str:
    async with stack.db.sessions() as s:
        attempt = await s.scalar(select(PaymentAttempt).where(PaymentAttempt.status == "succeeded"))
    assert attempt is not None
    assert attempt.approval_no
    return attempt.approval_no


async def receipt_link(stack: Stack) -> str:
    """The sandbox PG's receipt page of the paid attempt (the notice links it)."""
    async with stack.db.sessions() as s:
        url = await s.scalar(
            select(PaymentAttempt.receipt_url).where(PaymentAttempt.status == "succeeded")
        )
    assert url is not None
    assert url.startswith(f"{stack.sandbox.url}/sandbox/receipts/")
    return url


async def test_a_registration_call_tells_the_card_by_issuer_and_last4(stack: Stack) -> None:
    await register(stack, CANARY)
    card = await the_card(stack)
    body = (await texts(stack))["registration_completed"]
    assert body == f"[행복치과] 자동결제 카드 등록이 완료되었습니다. ({card.issuer} 끝자리 1881)"
    assert sms_format(body) == "SMS"
    assert euckr_bytes(body) <= 90
    [n] = await notices(stack)
    assert (n.kind, n.mobile) == ("registration_completed", "01012345678")
    assert not leaks(body)
    assert not leaks(repr(n.variables))


async def test_a_payment_call_tells_the_approval(stack: Stack) -> None:
    await register(stack)
    card = await the_card(stack)
    await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, _ = await stack.call([Press("1"), *VERIFY, Press("1")])
    assert outcome == "completed"
    body = (await texts(stack))["payment_approved"]
    approval, receipt = await approval_of(stack), await receipt_link(stack)
    assert body == (
        f"[행복치과] 30,000원 결제가 승인되었습니다. "
        f"(일시불, {card.issuer} 끝자리 1111, 승인번호 {approval}) 영수증 {receipt}"
    )
    assert sms_format(body) == ("SMS" if euckr_bytes(body) <= 90 else "LMS")
    assert sms_format(body) == "LMS"  # the approval number and link: longer than 90 bytes


async def test_a_declined_card_tells_why_and_what_to_do(stack: Stack) -> None:
    await register(stack, "4000000000009995")  # registers; its charges are declined
    req = await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, _ = await stack.call([Press("1"), *VERIFY, Press("1"), Press("3")])
    assert outcome == "payment_failed"
    body = (await texts(stack))["payment_failed"]
    assert body == (
        "[행복치과] 30,000원 결제가 승인되지 않았습니다(청구되지 않음). 사유: 잔액 부족 또는 "
        "한도 초과. 잔액·한도를 확인하신 뒤 다시 결제하시거나 다른 카드를 이용해 주세요."
    )
    assert sms_format(body) == "LMS"
    assert (await stack.reload(req.id)).status == CallRequestStatus.sms_sent.value


async def test_a_pending_charge_settled_by_the_sweeper_is_told_and_closes_the_request(
    stack: Stack,
) -> None:
    """The PG loses the charge request before recording it: the call says "결과는 문자로
    알려 드리겠습니다" and ends; the sweeper later sends the same order id, it is paid,
    the payer gets the settled notice and the request is completed (not left to expire)."""
    await register(stack)
    card = await the_card(stack)
    req = await stack.request(CallRequestKind.payment, amount=30_000)
    await stack.sandbox.fault("charge", "drop_before_record")
    outcome, call = await stack.call([Press("1"), *VERIFY, Press("1")])
    assert outcome == "payment_pending"
    assert call.played[-1] == "arspay/pay.pending"
    assert (await stack.reload(req.id)).status == CallRequestStatus.sms_sent.value
    assert [n.kind for n in await notices(stack)] == ["registration_completed"]
    stack.clock.advance(timedelta(minutes=31))  # past its lifetime (30 min) and settle_s
    # not expired while its charge is unknown: it ends with that charge's result
    assert await stack.runtime.services.requests.expire_due() == 0
    charger = stack.runtime.charger
    await charger.reconcile()
    await charger.reconcile()  # the same event seen again tells nothing more
    row = await stack.reload(req.id)
    assert row.status == CallRequestStatus.completed.value
    body = (await texts(stack))["payment_settled"]
    approval, receipt = await approval_of(stack), await receipt_link(stack)
    assert body == (
        f"[행복치과] 확인 중이던 30,000원 결제가 승인되었습니다. "
        f"(일시불, {card.issuer} 끝자리 1111, 승인번호 {approval}) 영수증 {receipt}"
    )
    assert [n.kind for n in await notices(stack)] == ["registration_completed", "payment_settled"]


async def test_a_refund_through_the_payment_service_is_told(stack: Stack) -> None:
    await register(stack)
    await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, _ = await stack.call([Press("1"), *VERIFY, Press("1")])
    assert outcome == "completed"
    async with stack.db.sessions() as s:
        intent = await s.scalar(select(PaymentIntent))
    assert intent is not None
    refunds = stack.runtime.payments.refunds
    await refunds.refund(stack.merchant_id, intent.id, amount=10_000)
    partial = (await texts(stack))["refund"]
    assert (
        partial
        == "[행복치과] 결제 30,000원 중 10,000원이 부분 취소되었습니다. (남은 결제 20,000원)"
    )
    await refunds.refund(stack.merchant_id, intent.id)  # the rest
    await stack.runtime.services.outbox.deliver_pending()
    async with stack.db.sessions() as s:
        bodies = list(
            await s.scalars(
                select(SmsMessage.body)
                .join(Notice, SmsMessage.notice_id == Notice.id)
                .where(Notice.kind == "refund")
            )
        )
    assert sorted(bodies) == sorted([
        partial,
        "[행복치과] 결제 30,000원 중 남은 20,000원이 취소되어 전액 취소되었습니다.",
    ])  # fmt: skip


async def test_a_schedule_is_pre_noticed_days_ahead_once(stack: Stack) -> None:
    await register(stack)
    card = await the_card(stack)
    services = stack.runtime.services
    plan = {"rule": {"every": "month", "day": 5}, "start": "2026-12-01", "count": 1, "at": "10:00"}
    await services.schedules.create(
        stack.merchant_id, stack.customer_id, plan=plan, amount=30_000, order_name="학원비",
        card_id=card.id,
    )  # fmt: skip
    scheduler = stack.runtime.scheduler
    await scheduler.tick()  # 11/28: the charge (12/5 10:00 KST) is more than 3 days away
    assert [n.kind for n in await notices(stack)] == ["registration_completed"]
    stack.clock.advance(timedelta(days=4))  # 12/2 12:00 KST: within 3 days
    await scheduler.tick()
    await scheduler.tick()  # once per cycle
    body = (await texts(stack))["schedule_prenotice"]
    assert body == (
        f"[행복치과] 12/5 정기결제 30,000원이 등록하신 카드({card.issuer} 끝자리 1111)로 "
        "결제될 예정입니다."
    )
    assert [n.kind for n in await notices(stack)] == [
        "registration_completed",
        "schedule_prenotice",
    ]


async def test_an_expired_request_is_told_when_the_merchant_wants_it(stack: Stack) -> None:
    requests = stack.runtime.services.requests
    await stack.request(CallRequestKind.payment, amount=30_000)  # default: not told
    stack.clock.advance(timedelta(hours=2))
    assert await requests.expire_due() == 1
    assert await notices(stack) == []
    await set_policy(stack, notices={"request_expired": True})
    await stack.request(CallRequestKind.payment, amount=45_000, product="스케일링")
    stack.clock.advance(timedelta(hours=2))
    assert await requests.expire_due() == 1
    body = (await texts(stack))["request_expired"]
    assert body == (
        "[행복치과] 스케일링 45,000원 결제 요청의 유효 시간이 지났습니다. "
        "필요하시면 행복치과에 다시 요청해 주세요."
    )


async def test_kinds_switched_off_tell_nothing(stack: Stack) -> None:
    off = {"registration_completed": False, "payment_approved": False, "refund": False}
    await set_policy(stack, notices=off)
    await register(stack)
    await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, _ = await stack.call([Press("1"), *VERIFY, Press("1")])
    assert outcome == "completed"
    async with stack.db.sessions() as s:
        intent = await s.scalar(select(PaymentIntent))
    assert intent is not None
    await stack.runtime.payments.refunds.refund(stack.merchant_id, intent.id)
    assert await notices(stack) == []
    assert await texts(stack) == {}


async def test_a_card_keyed_in_a_payment_call_is_told_by_last4_only(stack: Stack) -> None:
    await stack.request(CallRequestKind.payment, amount=30_000)
    # no card registered: 1 = key a card (pay.enter_or_decline), then no save, then pay
    outcome, _ = await stack.call([Press("1"), *card_keys(CANARY), Press("2"), Press("1")])
    assert outcome == "completed"
    body = (await texts(stack))["payment_approved"]
    assert "끝자리 1881" in body
    for n in await notices(stack):
        assert not leaks(repr(n.variables))
    assert not leaks(body)


async def test_a_charge_settled_before_the_hang_up_completes_the_request_at_release(
    stack: Stack,
) -> None:
    """The sweeper can settle the charge while "pay.pending" still plays: the request
    is in the call then, so the payer gets the approval notice, and the request is
    completed when the call is released (not put back to wait for another call)."""
    await register(stack)
    req = await stack.request(CallRequestKind.payment, amount=30_000)
    await stack.sandbox.fault("charge", "drop_before_record")
    outcome, _ = await stack.call([Press("1"), *VERIFY, Press("1")])
    assert outcome == "payment_pending"
    requests = stack.runtime.services.requests
    await requests.transition(req.id, CallRequestStatus.in_call, actor="test")  # on the line
    stack.clock.advance(timedelta(seconds=121))
    await stack.runtime.charger.reconcile()
    assert (await stack.reload(req.id)).status == CallRequestStatus.in_call.value
    released = await requests.release_call(req.id, max_calls=5)
    assert released is CallRequestStatus.completed
    kinds = [n.kind for n in await notices(stack)]
    assert kinds == ["registration_completed", "payment_approved"]
