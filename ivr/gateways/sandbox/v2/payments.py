"""V2 payments: ``POST /payments/{paymentId}/billing-key``, ``POST
/payments/{paymentId}/instant``, ``GET /payments/{paymentId}``, ``POST
/payments/{paymentId}/cancel``.

The outcome table is the v1 paths' (:mod:`ivr.gateways.sandbox.cards`): a declined card
is recorded FAILED and answered ``PgProviderError`` (502, ``pgCode`` = the bracketed
code); the PG-error card is HTTP 500, nothing recorded; a card-holder check that fails
on an instant payment is refused before any payment exists (502, nothing recorded). A
paymentId paid or in progress refuses another payment with 409 ``ALREADY_PAID`` (the
only duplicate type the document lists for these operations) and records nothing.
Each call plays its endpoint's fault ordering (``charge``, ``keyed``, ``cancel``); the
sandbox reads ``Idempotency-Key`` no further than V2's form: its ledger alone keeps a
paymentId paid at most once.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ivr.gateways.sandbox import cards
from ivr.gateways.sandbox import http as h
from ivr.gateways.sandbox.billing import _customer, _first_unknown, _payment, record_payment
from ivr.gateways.sandbox.cards import Failure, Scenario
from ivr.gateways.sandbox.faults import Endpoint, Fault, Ordering
from ivr.gateways.sandbox.ledger import (
    ALREADY_CANCELLED,
    CANCEL_NOT_FOUND,
    CHECKSUM_MISMATCH,
    EXCEEDS,
    NOT_PAID,
)
from ivr.gateways.sandbox.orderings import play
from ivr.gateways.sandbox.records import CancelRecord, CustomerRecord, PaymentRecord
from ivr.gateways.sandbox.state import STATE, SandboxState
from ivr.gateways.sandbox.v2 import answers as a
from ivr.gateways.sandbox.v2 import notify
from ivr.gateways.sandbox.v2 import records as r
from ivr.gateways.sandbox.v2.billing import DEFAULT_CHANNEL, Card, store_of

_NOT_FOUND = (404, "PAYMENT_NOT_FOUND", "결제 건이 존재하지 않습니다.")
CANCEL_ERRORS: dict[Failure, tuple[int, str]] = {
    CANCEL_NOT_FOUND: (404, "PAYMENT_NOT_FOUND"),
    CHECKSUM_MISMATCH: (409, "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN"),
    EXCEEDS: (409, "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT"),
    ALREADY_CANCELLED: (409, "PAYMENT_ALREADY_CANCELLED"),
    NOT_PAID: (409, "PAYMENT_NOT_PAID"),
}


def _payment_id(request: web.Request) -> str:
    return h.uid(request.match_info["payment_id"], h.MERCHANT_UID, "paymentId")


def _terms(data: Mapping[str, Any]) -> tuple[str, int, int]:
    """orderName, amount.total (KRW, positive), installmentMonth (0 = 일시불)."""
    name = a.text(data, "orderName") or ""
    total = a.integer(a.obj(data, "amount", required=True), "total") or 0
    if data.get("currency") != "KRW" or total <= 0:
        raise h.BadRequest("amount.total must be positive KRW (currency KRW)")
    card = a.obj(a.obj(data, "method"), "card")
    months = a.integer(data, "installmentMonth", required=False)
    if months is None:
        months = a.integer(card, "installmentMonth", required=False)
    return name, total, months or 0


def _answer(st: SandboxState, recorded: PaymentRecord | Failure) -> web.Response:
    if isinstance(recorded, Failure):
        return a.error(409, "ALREADY_PAID", recorded.text)
    if recorded.status == "paid":
        notify.send(st, "Transaction.Paid", _event(recorded))
        return a.ok({"payment": {"pgTxId": recorded.pg_tid, "paidAt": a.rfc3339(recorded.paid_at)}})
    notify.send(st, "Transaction.Failed", _event(recorded))
    code, _, message = (recorded.fail_reason or "").partition("] ")
    return a.pg_provider(Failure(code.lstrip("["), message))


async def _record(
    st: SandboxState,
    fault: Fault,
    payment_id: str,
    billing_key: str | None,
    terms: tuple[str, int, int],
    customer: CustomerRecord,
    failure: Failure | None,
) -> web.Response:
    """Record the payment (paid, or FAILED with ``failure``) and answer it."""
    name, total, months = terms
    payment = _payment(st, merchant_uid=payment_id, customer_uid=billing_key, name=name,
                       amount=total, quota=months, customer=customer, failure=failure)  # fmt: skip
    return _answer(st, await record_payment(st, fault, payment))


def _event(p: PaymentRecord) -> dict[str, Any]:
    return {"paymentId": p.merchant_uid, "transactionId": p.imp_uid}


async def with_billing_key(request: web.Request) -> web.StreamResponse:
    st = request.config_dict[STATE]
    try:
        payment_id = _payment_id(request)
        data = await a.body(request)
        billing_key = a.text(data, "billingKey") or ""
        name, total, months = _terms(data)
    except h.BadRequest as exc:
        return a.invalid(str(exc))
    await st.ledger.note_request(payment_id)
    row = await st.ledger.run(lambda: r.get_key(st.ledger.db, billing_key))
    customer = await st.ledger.customer(billing_key)
    if row is None or customer is None:
        return a.error(404, "BILLING_KEY_NOT_FOUND", "빌링키가 존재하지 않습니다.")
    if row.status != "ISSUED":
        return a.error(409, "BILLING_KEY_ALREADY_DELETED", "빌링키가 이미 삭제되었습니다.")
    fault = st.plan.draw(Endpoint.charge, payment_id, billing_key)
    fault = await _first_unknown(st, fault, payment_id, customer.scenario)

    async def record() -> web.Response:
        failure = cards.charge_check(
            Scenario(customer.scenario), total, months, check_card=customer.card_type == 1
        )
        terms = (name, total, months)
        return await _record(st, fault, payment_id, billing_key, terms, customer, failure)

    return await play(request, st, fault, record)


async def instant(request: web.Request) -> web.StreamResponse:
    st = request.config_dict[STATE]
    try:
        payment_id = _payment_id(request)
        data = await a.body(request)
        card = Card(data)
        name, total, months = _terms(data)
    except h.BadRequest as exc:
        return a.invalid(str(exc))
    await st.ledger.note_request(payment_id)
    scn = cards.scenario(card.number)
    fault = await _first_unknown(
        st, st.plan.draw(Endpoint.keyed, payment_id), payment_id, scn.value
    )

    async def record() -> web.Response:
        if not cards.luhn_ok(card.number):
            return a.pg_provider(cards.INVALID_CARD_NUMBER)
        if scn is Scenario.pg_error:
            return h.server_error(cards.PG_ERROR)
        holder = cards.holder_check(card.password, card.birth)
        if holder is not None:
            return a.pg_provider(holder)  # 카드정보 인증 실패: before any payment exists
        customer = _customer(st, "", card.number)
        failure = cards.card_status(scn, card.expiry, st.today()) or cards.charge_check(
            scn, total, months, check_card=customer.card_type == 1
        )
        terms = (name, total, months)
        return await _record(st, fault, payment_id, None, terms, customer, failure)

    return await play(request, st, fault, record)


async def _current(st: SandboxState, payment_id: str) -> PaymentRecord | None:
    """The payment V2 shows for a paymentId: the paid (or cancelled) one, else one in
    progress, else the newest failed one."""
    found = await st.ledger.payments(payment_id)
    for wanted in (("paid", "cancelled"), ("ready",)):
        for p in found:
            if p.status in wanted:
                return p
    return found[0] if found else None


async def get(request: web.Request) -> web.Response:
    st = request.config_dict[STATE]
    try:
        payment_id = _payment_id(request)
    except h.BadRequest as exc:
        return a.invalid(str(exc))
    p = await _current(st, payment_id)
    if p is None:
        return a.error(*_NOT_FOUND)
    store = request.query.get("storeId") or st.config.v2_store_id
    return a.ok(r.payment(p, store, DEFAULT_CHANNEL, h.origin(request)))


async def cancel(request: web.Request) -> web.StreamResponse:
    st = request.config_dict[STATE]
    try:
        payment_id = _payment_id(request)
        data = await a.body(request)
        reason = a.text(data, "reason") or ""
        amount = a.integer(data, "amount", required=False)
        checksum = a.integer(data, "currentCancellableAmount", required=False)
        store_of(st, data)
    except h.BadRequest as exc:
        return a.invalid(str(exc))
    if amount is not None and amount <= 0:
        return a.invalid("amount must be positive")
    fault = st.plan.draw(Endpoint.cancel, payment_id)
    if fault.ordering is Ordering.slow_processing:
        fault = Fault(Ordering.late, fault.delay_ms)

    async def record() -> web.Response:
        entry = CancelRecord(
            amount=0,
            reason=reason,
            cancelled_at=st.now(),
            pg_tid=f"sbx_{secrets.token_hex(8)}",
            cancellation_id=f"cancellation-{secrets.token_hex(8)}",
        )
        result = await st.ledger.cancel(payment_id, amount, checksum, entry)
        if isinstance(result, Failure):
            status, error_type = CANCEL_ERRORS.get(result, (409, "PAYMENT_NOT_PAID"))
            return a.error(status, error_type, result.text)
        done = result.cancels[-1]
        event = (
            "Transaction.Cancelled"
            if result.status == "cancelled"
            else ("Transaction.PartialCancelled")
        )
        notify.send(st, event, {**_event(result), "cancellationId": done.cancellation_id})
        return a.ok({"cancellation": r.cancellation(done)})

    return await play(request, st, fault, record)
