"""Recording payer notices, each *inside the transaction that makes the change* (the
outbox pattern, as the merchant's webhook events): the notice exists exactly when the
change committed, and only the transition itself records one — a finished object driven
again records nothing. The ``dedupe_key`` (kind family + the object's id) is the second
guard: a second recording of one event inserts nothing (``ON CONFLICT DO NOTHING``, so
the caller's transaction — a payment, a refund — is never undone by a notice).

A notice holds the merchant's name, amounts and the card as issuer + last 4: never a
card number. The merchant's switches (``settings["notices"]``) are read here; a notice
switched off is not recorded at all."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import SEOUL, Clock
from ivr.domain.facts import AttemptFacts, IntentFacts
from ivr.domain.ids import new_id
from ivr.domain.states import CallRequestKind, CallRequestStatus, PaymentIntentStatus
from ivr.notify.notices.kinds import NoticeKind, NoticeSettings
from ivr.store.tables import (
    CallRequest,
    Card,
    Customer,
    Merchant,
    Notice,
    PaymentIntent,
    Refund,
    Schedule,
)

PENDING = "pending"
ROUTED = "routed"


def notice_settings(settings: dict[str, Any] | None) -> NoticeSettings:
    """The merchant's notice switches; stored settings that no longer validate fall back
    to the defaults (a notice must never fail the payment it reports)."""
    try:
        return NoticeSettings.model_validate((settings or {}).get("notices") or {})
    except ValidationError:
        return NoticeSettings()


def _row(
    clock: Clock,
    kind: NoticeKind,
    *,
    merchant: Merchant,
    mobile: str,
    subject_id: str,
    dedupe_key: str,
    variables: dict[str, Any],
) -> dict[str, Any] | None:
    """The values of a new notice, or None when the merchant switched ``kind`` off."""
    if not mobile or not notice_settings(merchant.settings).enabled(kind):
        return None
    return {
        "id": new_id("ntc"),
        "merchant_id": merchant.id,
        "kind": kind.value,
        "dedupe_key": dedupe_key,
        "subject_id": subject_id,
        "mobile": mobile,
        "variables": {"merchant": merchant.name, **variables},
        "status": PENDING,
        "created_at": clock.now(),
    }


async def _insert_in(s: AsyncSession, rows: list[dict[str, Any]], chunk: int = 500) -> int:
    """Insert notices; a row whose ``dedupe_key`` is taken adds nothing. Returns how
    many were added."""
    postgres = s.get_bind().dialect.name == "postgresql"
    added = 0
    for start in range(0, len(rows), chunk):
        stmt = (
            (pg_insert if postgres else sqlite_insert)(Notice)
            .values(rows[start : start + chunk])
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
        )
        result = await s.execute(stmt)
        added += max(0, int(getattr(result, "rowcount", 0) or 0))
    return added


async def record_in(
    s: AsyncSession,
    clock: Clock,
    kind: NoticeKind,
    *,
    merchant: Merchant,
    mobile: str,
    subject_id: str,
    dedupe_key: str,
    variables: dict[str, Any],
) -> bool:
    """Record one notice unless the merchant switched ``kind`` off or ``dedupe_key``
    already names one. True when a notice was added."""
    row = _row(clock, kind, merchant=merchant, mobile=mobile, subject_id=subject_id,
               dedupe_key=dedupe_key, variables=variables)  # fmt: skip
    return row is not None and await _insert_in(s, [row]) == 1


def _card(card: Card | None) -> dict[str, Any]:
    return {"issuer": card.issuer, "last4": card.last4} if card is not None else {}


async def request_ended_notice_in(s: AsyncSession, clock: Clock, req: CallRequest) -> None:
    """A registration request completed (the card attached), or any request expired."""
    merchant = await s.get(Merchant, req.merchant_id)
    if merchant is None:
        return
    status = CallRequestStatus(req.status)
    if (
        status is CallRequestStatus.completed
        and req.kind == CallRequestKind.registration.value
        and req.card_id
    ):
        card = await s.get(Card, req.card_id)
        await record_in(s, clock, NoticeKind.registration_completed, merchant=merchant,
                        mobile=req.mobile, subject_id=req.id,
                        dedupe_key=f"registration_completed:{req.id}",
                        variables=_card(card))  # fmt: skip
    elif status is CallRequestStatus.expired:
        await record_in(s, clock, NoticeKind.request_expired, merchant=merchant,
                        mobile=req.mobile, subject_id=req.id,
                        dedupe_key=f"request_expired:{req.id}",
                        variables={"request_kind": req.kind, "product": req.product_name,
                                   "amount": req.amount})  # fmt: skip


async def payment_ended_notice_in(
    s: AsyncSession, clock: Clock, intent: IntentFacts, attempt: AttemptFacts | None
) -> None:
    """One intent that just became ``succeeded`` or ``failed`` (see
    :func:`payment_notices_in`)."""
    await payment_notices_in(s, clock, [(intent, attempt)])


async def payment_notices_in(
    s: AsyncSession,
    clock: Clock,
    ended: Sequence[tuple[IntentFacts, AttemptFacts | None]],
) -> int:
    """Intents that just became ``succeeded`` or ``failed`` (with their deciding
    attempts): ``payment_approved`` / ``payment_failed``, or ``payment_settled`` for an
    intent of a payment request whose call is over (the payer heard "결과는 문자로 알려
    드리겠습니다"). A scheduled charge's failure is not told here: the schedule retries
    it, and its last failure sends the payer a payment request (ivr/billing/scheduler.py).
    A few reads for the whole batch (bulk charging settles hundreds at once)."""
    done = (PaymentIntentStatus.succeeded.value, PaymentIntentStatus.failed.value)
    items = [(i, a) for i, a in ended if i.status in done]
    if not items:
        return 0
    ids = [i.id for i, _ in items]
    requests: dict[str | None, str] = {
        pid: status
        for pid, status in await s.execute(
            select(CallRequest.payment_intent_id, CallRequest.status).where(
                CallRequest.payment_intent_id.in_(ids)
            )
        )
    }
    merchants = {
        m.id: m
        for m in await s.scalars(
            select(Merchant).where(Merchant.id.in_({i.merchant_id for i, _ in items}))
        )
    }
    mobiles: dict[str, str] = {
        cid: mobile
        for cid, mobile in await s.execute(
            select(Customer.id, Customer.mobile).where(
                Customer.id.in_({i.customer_id for i, _ in items})
            )
        )
    }
    cards: dict[str, dict[str, Any]] = {
        cid: {"issuer": issuer, "last4": last4}
        for cid, issuer, last4 in await s.execute(
            select(Card.id, Card.issuer, Card.last4).where(
                Card.id.in_({i.card_id for i, _ in items if i.card_id})
            )
        )
    }
    rows: list[dict[str, Any]] = []
    for intent, attempt in items:
        approved = intent.status == PaymentIntentStatus.succeeded.value
        req_status = requests.get(intent.id)
        settled = req_status is not None and req_status != CallRequestStatus.in_call.value
        merchant = merchants.get(intent.merchant_id)
        if merchant is None or (not approved and not settled and intent.source == "schedule"):
            continue
        variables: dict[str, Any] = {"amount": intent.amount}
        if approved:
            variables |= {
                "months": intent.installment_months,
                **cards.get(intent.card_id or "", {}),
                "approval_no": attempt.approval_no if attempt is not None else None,
                # the PG's receipt page, kept only on an allowed host
                # (ivr/gateways/receipts.py): the SMS links it, Alimtalk's button too
                "receipt_url": attempt.receipt_url if attempt is not None else None,
            }
        else:
            variables["decline_code"] = attempt.decline_code if attempt is not None else None
        if settled:
            kind = NoticeKind.payment_settled
            variables["result"] = "approved" if approved else "failed"
        else:
            kind = NoticeKind.payment_approved if approved else NoticeKind.payment_failed
        row = _row(clock, kind, merchant=merchant, mobile=mobiles.get(intent.customer_id, ""),
                   subject_id=intent.id, dedupe_key=f"payment_result:{intent.id}",
                   variables=variables)  # fmt: skip
        if row is not None:
            rows.append(row)
    return await _insert_in(s, rows) if rows else 0


async def refund_notice_in(
    s: AsyncSession, clock: Clock, intent: PaymentIntent, refund: Refund
) -> None:
    """A refund was applied at the PG (full: it cancelled the whole payment at once)."""
    merchant = await s.get(Merchant, intent.merchant_id)
    customer = await s.get(Customer, intent.customer_id)
    if merchant is None or customer is None:
        return
    await record_in(s, clock, NoticeKind.refund, merchant=merchant, mobile=customer.mobile,
                    subject_id=refund.id, dedupe_key=f"refund:{refund.id}",
                    variables={"amount": refund.amount, "full": refund.amount == intent.amount,
                               "paid_amount": intent.amount,
                               "refunded_amount": intent.refunded_amount})  # fmt: skip


def charge_date(at: datetime) -> str:
    """``12/10`` (Seoul)."""
    local = at.astimezone(SEOUL)
    return f"{local.month}/{local.day}"


async def prenotice_in(s: AsyncSession, clock: Clock, schedule: Schedule) -> bool:
    """The pre-notice of a schedule's next automatic charge (cycle ``runs + 1``), once
    per cycle; the caller decides it is due (the merchant's ``prenotice_days``)."""
    merchant = await s.get(Merchant, schedule.merchant_id)
    customer = await s.get(Customer, schedule.customer_id)
    if merchant is None or customer is None or schedule.next_run_at is None:
        return False
    card = await s.get(Card, schedule.card_id) if schedule.card_id else None
    cycle = schedule.runs + 1
    return await record_in(s, clock, NoticeKind.schedule_prenotice, merchant=merchant,
                           mobile=customer.mobile, subject_id=schedule.id,
                           dedupe_key=f"schedule_prenotice:{schedule.id}:{cycle}",
                           variables={"amount": schedule.amount,
                                      "charge_date": charge_date(schedule.next_run_at),
                                      **_card(card)})  # fmt: skip
