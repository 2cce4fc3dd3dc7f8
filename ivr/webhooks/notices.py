"""What the engine tells merchants, built from its rows: one function per event family,
each called *inside the transaction that makes the change* (so the event exists exactly
when the change committed — the outbox pattern) and only on the transition itself (so
re-driving a finished object emits nothing).

Data carry ids, amounts and outcomes; cards appear as BIN + last 4 at most.

The payer's notices of the same events (ivr/notify/notices, docs/notices.md) are
recorded here too, in the same transaction: one notice per event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import Clock
from ivr.domain.facts import AttemptFacts, IntentFacts
from ivr.domain.ids import is_object_id
from ivr.domain.states import CallRequestKind, CallRequestStatus, PaymentIntentStatus
from ivr.domain.text import mask_card_numbers, remove_refused_characters
from ivr.gateways.declines import PROMPT_TEXT, DeclineReason
from ivr.notify.notices.record import (
    payment_ended_notice_in,
    refund_notice_in,
    request_ended_notice_in,
)
from ivr.store.tables import CallRequest, Card, PaymentAttempt, PaymentIntent, Refund
from ivr.webhooks.events import emit_in


def _masked(value: Any) -> Any:
    """``value`` with every card-like digit run in its strings masked."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


async def _emit(
    s: AsyncSession, clock: Clock, merchant_id: str, type: str, data: dict[str, Any]
) -> None:
    """Emit with card-like runs masked: ``emit_in`` would refuse them, and a refusal
    must never undo the change being reported (a payment, a refund)."""
    await emit_in(s, clock, merchant_id, type, _masked(data))


def masked(item: tuple[str, str, dict[str, Any]]) -> tuple[str, str, dict[str, Any]]:
    """An ``(merchant_id, type, data)`` item with its data masked (see :func:`_emit`)."""
    merchant_id, type, data = item
    return merchant_id, type, _masked(data)


def _text(value: str) -> str:
    """Merchant free text (an order name) with any card-like digit run masked and any
    control or invisible character dropped: the event must go out (``emit_in`` refuses
    both), and it carries no card. Our own ids are left alone."""
    if is_object_id(value):
        return value
    return mask_card_numbers(remove_refused_characters(value))


_REGISTRATION = {
    CallRequestStatus.completed: "registration.completed",
    CallRequestStatus.declined: "registration.declined",
    CallRequestStatus.failed: "registration.failed",
    CallRequestStatus.expired: "registration.expired",
}


async def request_ended_in(s: AsyncSession, clock: Clock, req: CallRequest) -> None:
    """A call request reached a final status (``registration.*``,
    ``call_request.expired``; a payment request's outcome is its ``payment.*``)."""
    status = CallRequestStatus(req.status)
    data: dict[str, Any] = {
        "call_request_id": req.id,
        "kind": req.kind,
        "status": req.status,
        "customer_id": req.customer_id,
        "card_id": req.card_id,
        "payment_id": req.payment_intent_id,
        "calls": req.calls,
    }
    if req.kind == CallRequestKind.registration.value and status in _REGISTRATION:
        await _emit(s, clock, req.merchant_id, _REGISTRATION[status], data)
    if status is CallRequestStatus.expired:
        await _emit(s, clock, req.merchant_id, "call_request.expired", data)
    await request_ended_notice_in(s, clock, req)


def _decline(attempt: AttemptFacts) -> dict[str, str | None]:
    """The normalized reason (``code``), ``soft`` or ``hard``, and the Korean text the
    payer hears for it (None for engine codes such as ``no_billing_key``)."""
    code = attempt.decline_code or ""
    message = PROMPT_TEXT.get(DeclineReason(code)) if code in DeclineReason.__members__ else None
    return {"code": attempt.decline_code, "kind": attempt.decline_class, "message": message}


def payment_event(
    intent: IntentFacts, attempt: AttemptFacts | None
) -> tuple[str, str, dict[str, Any]] | None:
    """``(merchant_id, type, data)`` for an intent that became ``succeeded`` or
    ``failed`` (``attempt``: the deciding one); None for any other status."""
    status = PaymentIntentStatus(intent.status)
    if status not in (PaymentIntentStatus.succeeded, PaymentIntentStatus.failed):
        return None
    data: dict[str, Any] = {
        "payment_id": intent.id,
        "status": intent.status,
        "amount": intent.amount,
        "currency": intent.currency,
        "order_name": _text(intent.order_name),
        "installment_months": intent.installment_months,
        "customer_id": intent.customer_id,
        "card_id": intent.card_id,
        "source": intent.source,
        "schedule_id": intent.schedule_id,
    }
    if attempt is not None:
        data["order_id"] = attempt.order_id
        if status is PaymentIntentStatus.succeeded:
            data["approval_no"] = attempt.approval_no
            data["receipt_url"] = attempt.receipt_url  # the PG's receipt page, or null
        else:
            data["decline"] = _decline(attempt)
    event = "payment.succeeded" if status is PaymentIntentStatus.succeeded else "payment.failed"
    return intent.merchant_id, event, data


async def payment_ended_in(
    s: AsyncSession, clock: Clock, intent: PaymentIntent, attempt: PaymentAttempt | None
) -> None:
    """``payment.succeeded`` / ``payment.failed`` for an intent that just finished."""
    item = payment_event(intent, attempt)
    if item is not None:
        await _emit(s, clock, *item)
        await payment_ended_notice_in(s, clock, intent, attempt)


async def refunded_in(s: AsyncSession, clock: Clock, intent: PaymentIntent, refund: Refund) -> None:
    await _emit(
        s,
        clock,
        intent.merchant_id,
        "payment.refunded",
        {
            "payment_id": intent.id,
            "refund_id": refund.id,
            "amount": refund.amount,
            "refunded_amount": intent.refunded_amount,
            "status": intent.status,
        },
    )
    await refund_notice_in(s, clock, intent, refund)


async def schedule_charge_failed_in(
    s: AsyncSession, clock: Clock, merchant_id: str, data: dict[str, Any]
) -> None:
    await _emit(s, clock, merchant_id, "schedule.charge_failed", data)


async def schedule_cycle_declined_in(
    s: AsyncSession, clock: Clock, merchant_id: str, data: dict[str, Any]
) -> None:
    """A consent cycle ended without a charge: the payer said no, or the request was
    cancelled (``reason``)."""
    await _emit(s, clock, merchant_id, "schedule.cycle_declined", data)


async def card_verify_locked_in(s: AsyncSession, clock: Clock, card: Card) -> None:
    """A card was locked for phone payments after too many knowledge-factor failures
    (``locked_until``; the merchant may unlock it sooner)."""
    until = card.verify_locked_until
    await _emit(s, clock, card.merchant_id, "card.verify_locked", {
        "card_id": card.id,
        "customer_id": card.customer_id,
        "last4": card.last4,
        "issuer": card.issuer,
        "failures": card.verify_failures,
        "locked_until": until.isoformat() if until else None,
    })  # fmt: skip


async def bulk_completed_in(
    s: AsyncSession, clock: Clock, merchant_id: str, progress: dict[str, Any]
) -> None:
    await _emit(s, clock, merchant_id, "bulk_job.completed", progress)
