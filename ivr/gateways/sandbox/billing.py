"""Sandbox endpoints that touch cards: register a billing key, charge it, keyed charge.

``POST /subscribe/customers/{customer_uid}``: card data -> a customer (billing key);
refusals are HTTP 200 with ``code -1`` and ``[CODE] message``.
``POST /subscribe/payments/again`` and ``/subscribe/payments/onetime``: a new order (or
one whose payments all failed) is recorded as ``paid`` or ``failed`` (``fail_reason``)
and answered ``code 0``; an order already paid, or still being processed, is refused
with ``code -1`` and nothing recorded (the ledger's duplicate rule). For
``unknown_first`` cards the first payment of each order is recorded and its answer
dropped. Every endpoint here plays the request's fault ordering (:mod:`.faults`).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from aiohttp import web

from ivr.gateways.sandbox import cards, rules
from ivr.gateways.sandbox import http as h
from ivr.gateways.sandbox.cards import Failure, Scenario
from ivr.gateways.sandbox.faults import Endpoint, Fault, Ordering
from ivr.gateways.sandbox.orderings import play
from ivr.gateways.sandbox.records import CustomerRecord, PaymentRecord, customer_to_portone
from ivr.gateways.sandbox.state import STATE, SandboxState

_EXPIRY = r"\d{4}-(0[1-9]|1[0-2])"


def _card(data: Mapping[str, Any]) -> tuple[str, str, str | None, str | None]:
    raw = h.text(data, "card_number") or ""
    number = raw.replace("-", "")
    expiry = h.text(data, "expiry") or ""
    if not number.isdigit() or re.fullmatch(_EXPIRY, expiry) is None:
        raise h.BadRequest("card_number (dddd-dddd-dddd-dddd) and expiry (YYYY-MM) required")
    return (
        number,
        expiry,
        h.text(data, "birth", required=False),
        h.text(data, "pwd_2digit", required=False),
    )


def _customer(st: SandboxState, customer_uid: str, number: str) -> CustomerRecord:
    name, code = cards.issuer(number)
    now = st.now()
    return CustomerRecord(customer_uid=customer_uid, scenario=cards.scenario(number).value,
                          card_masked=cards.mask(number), card_name=name, card_code=code,
                          card_type=1 if cards.is_check_card(number) else 0,
                          inserted=now, updated=now)  # fmt: skip


async def register(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    try:
        customer_uid = h.uid(request.match_info["customer_uid"], h.UID, "customer_uid")
        data = await h.read_body(request)
        rules.register(data, st.config.channel_key, st.config.pg)
        number, expiry, birth, pwd = _card(data)
    except h.BadRequest as exc:
        return h.bad_request(str(exc))
    fault = st.plan.draw(Endpoint.billing_key, customer_uid)

    async def record() -> web.Response:
        if not cards.luhn_ok(number):
            return h.refused(cards.INVALID_CARD_NUMBER)
        scn = cards.scenario(number)
        if scn is Scenario.pg_error:
            return h.server_error(cards.PG_ERROR)
        failure = cards.card_status(scn, expiry, st.today()) or cards.holder_check(
            pwd, birth, password_required=rules.password_required(st.config.pg)
        )
        if failure is not None:
            return h.refused(failure)
        customer = _customer(st, customer_uid, number)
        await st.ledger.put_customer(customer)
        return h.ok(customer_to_portone(customer, pg=st.config.pg))

    return await play(request, st, _not_slow(fault), record)


async def _known_customer(request: web.Request) -> CustomerRecord | web.Response:
    """The customer of the path's ``customer_uid``, or the answer saying why not."""
    try:
        customer_uid = h.uid(request.match_info["customer_uid"], h.UID, "customer_uid")
    except h.BadRequest as exc:
        return h.bad_request(str(exc))
    record = await request.app[STATE].ledger.customer(customer_uid)
    return h.envelope(-1, cards.NO_CUSTOMER.text, status=404) if record is None else record


async def view(request: web.Request) -> web.Response:
    """``GET /subscribe/customers/{customer_uid}``: the billing key; unknown: HTTP 404."""
    found = await _known_customer(request)
    if isinstance(found, web.Response):
        return found
    return h.ok(customer_to_portone(found, pg=request.app[STATE].config.pg))


async def delete(request: web.Request) -> web.Response:
    """``DELETE /subscribe/customers/{customer_uid}``: the billing key is gone (a later
    charge with it is refused ``CUSTOMER_NOT_FOUND``); an unknown one is HTTP 404."""
    found = await _known_customer(request)
    if isinstance(found, web.Response):
        return found
    st = request.app[STATE]
    if not await st.ledger.delete_customer(found.customer_uid):
        return h.envelope(-1, cards.NO_CUSTOMER.text, status=404)
    return h.ok(customer_to_portone(found, pg=st.config.pg))


def _payment(
    st: SandboxState,
    *,
    merchant_uid: str,
    customer_uid: str | None,
    name: str | None,
    amount: int,
    quota: int,
    customer: CustomerRecord,
    failure: Failure | None,
) -> PaymentRecord:
    now = st.now()
    paid = failure is None
    return PaymentRecord(
        imp_uid=f"imp_{secrets.randbelow(10**12):012d}",
        merchant_uid=merchant_uid,
        customer_uid=customer_uid,
        name=name,
        amount=amount,
        cancel_amount=0,
        status="paid" if paid else "failed",
        card_quota=quota,
        apply_num=f"{secrets.randbelow(10**8):08d}" if paid else None,
        pg_tid=f"sbx_{secrets.token_hex(8)}",
        card_name=customer.card_name,
        card_code=customer.card_code,
        card_masked=customer.card_masked,
        card_type=customer.card_type,
        scenario=customer.scenario,
        fail_reason=None if failure is None else failure.text,
        started_at=now,
        paid_at=now if paid else 0,
        failed_at=0 if paid else now,
        cancelled_at=0,
    )


def _not_slow(fault: Fault) -> Fault:
    """``slow_processing`` is a payment's; elsewhere it is ``late``."""
    if fault.ordering is Ordering.slow_processing:
        return Fault(Ordering.late, fault.delay_ms)
    return fault


async def _first_unknown(st: SandboxState, fault: Fault, merchant_uid: str, scenario: str) -> Fault:
    """``unknown_first`` cards: the first payment of an order loses its answer."""
    first = scenario == Scenario.unknown_first and fault.ordering is Ordering.normal
    if first and not await st.ledger.payments(merchant_uid):
        return Fault(Ordering.record_then_drop, st.config.hang_ms)
    return fault


async def record_payment(
    st: SandboxState, fault: Fault, payment: PaymentRecord
) -> PaymentRecord | Failure:
    """Record ``payment`` (the duplicate refusal if the order was paid or is in
    progress); with ``slow_processing`` it sits ``ready`` for the fault's delay first.
    Both API versions record payments this way."""
    slow = fault.ordering is Ordering.slow_processing
    first = replace(payment, status="ready", apply_num=None, fail_reason=None, paid_at=0,
                    failed_at=0) if slow else payment  # fmt: skip
    recorded = await st.ledger.charge(payment.merchant_uid, lambda: first)
    if isinstance(recorded, Failure) or not slow:
        return recorded
    await asyncio.sleep(fault.delay_s)
    return await st.ledger.finish(recorded.imp_uid, payment)


async def _record_payment(
    st: SandboxState, fault: Fault, payment: PaymentRecord, origin: str
) -> web.Response:
    recorded = await record_payment(st, fault, payment)
    if isinstance(recorded, Failure):
        return h.refused(recorded)
    return h.ok(recorded.to_portone(pg=st.config.pg, origin=origin))


async def again(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    try:
        data = await h.read_body(request)
        rules.payment(data, st.config.pg, again=True)
        customer_uid = h.uid(h.text(data, "customer_uid"), h.UID, "customer_uid")
        merchant_uid = h.uid(h.text(data, "merchant_uid"), h.MERCHANT_UID, "merchant_uid")
        amount = h.number(data, "amount") or 0
        name = h.text(data, "name")
        quota = h.number(data, "card_quota", required=False) or 0
    except h.BadRequest as exc:
        return h.bad_request(str(exc))
    if amount <= 0:
        return h.bad_request("amount must be positive")
    await st.ledger.note_request(merchant_uid)
    customer = await st.ledger.customer(customer_uid)
    fault = st.plan.draw(Endpoint.charge, merchant_uid, customer_uid)
    if customer is not None:
        fault = await _first_unknown(st, fault, merchant_uid, customer.scenario)

    async def record() -> web.Response:
        if customer is None:
            return h.refused(cards.NO_CUSTOMER)
        failure = cards.charge_check(Scenario(customer.scenario), amount, quota,
                                     check_card=customer.card_type == 1)  # fmt: skip
        payment = _payment(
            st, merchant_uid=merchant_uid, customer_uid=customer_uid, name=name,
            amount=amount, quota=quota, customer=customer, failure=failure,
        )  # fmt: skip
        return await _record_payment(st, fault, payment, h.origin(request))

    return await play(request, st, fault, record)


async def onetime(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    try:
        data = await h.read_body(request)
        rules.payment(data, st.config.pg, again=False)
        merchant_uid = h.uid(h.text(data, "merchant_uid"), h.MERCHANT_UID, "merchant_uid")
        amount = h.number(data, "amount") or 0
        name = h.text(data, "name", required=False)
        quota = h.number(data, "card_quota", required=False) or 0
        save_as = h.text(data, "customer_uid", required=False)
        if save_as is not None:
            h.uid(save_as, h.UID, "customer_uid")
        number, expiry, birth, pwd = _card(data)
    except h.BadRequest as exc:
        return h.bad_request(str(exc))
    if amount <= 0:
        return h.bad_request("amount must be positive")
    await st.ledger.note_request(merchant_uid)
    scn = cards.scenario(number)
    fault = await _first_unknown(
        st, st.plan.draw(Endpoint.keyed, merchant_uid, save_as), merchant_uid, scn.value
    )

    async def record() -> web.Response:
        if not cards.luhn_ok(number):
            return h.refused(cards.INVALID_CARD_NUMBER)
        if scn is Scenario.pg_error:
            return h.server_error(cards.PG_ERROR)
        holder = cards.holder_check(pwd, birth)
        if holder is not None:
            return h.refused(holder)  # 카드정보 인증 실패: refused before any payment exists
        customer = _customer(st, save_as or "", number)
        failure = cards.card_status(scn, expiry, st.today()) or cards.charge_check(
            scn, amount, quota, check_card=customer.card_type == 1
        )
        payment = _payment(
            st, merchant_uid=merchant_uid, customer_uid=save_as, name=name,
            amount=amount, quota=quota, customer=customer, failure=failure,
        )  # fmt: skip
        answer = await _record_payment(st, fault, payment, h.origin(request))
        if save_as is not None and failure is None and answer.status == 200:
            paid = await st.ledger.payment(merchant_uid, "paid")
            if paid is not None and paid.imp_uid == payment.imp_uid:
                await st.ledger.put_customer(customer)
        return answer

    return await play(request, st, fault, record)
