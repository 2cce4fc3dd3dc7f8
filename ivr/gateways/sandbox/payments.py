"""Sandbox endpoints on recorded payments: cancel and find.

``POST /payments/cancel`` follows PortOne's documented checks: the order must exist and
be paid; ``checksum`` (when given) must equal the refundable balance; ``amount``
(missing or 0 = everything left) must not exceed it. Refusals are HTTP 200 with a
non-zero code (``1`` for a missing order, as PortOne answers); cancels play the
request's fault ordering (:mod:`.faults`). ``GET
/payments/find/{merchant_uid}[/{payment_status}]`` answers the order's newest payment
(with that status), ``GET /payments/findAll/{merchant_uid}[/{payment_status}]`` all of
them (``{total, previous, next, list}``, newest first); both 404 for an unknown order.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from ivr.gateways.sandbox import cards
from ivr.gateways.sandbox import http as h
from ivr.gateways.sandbox.faults import Endpoint, Fault, Ordering
from ivr.gateways.sandbox.ledger import CANCEL_NOT_FOUND
from ivr.gateways.sandbox.orderings import play
from ivr.gateways.sandbox.records import CancelRecord
from ivr.gateways.sandbox.state import STATE

_NOT_FOUND = cards.Failure("NOT_FOUND", "존재하지 않는 결제정보입니다.")


async def cancel(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    try:
        data = await h.read_body(request)
        merchant_uid = h.uid(h.text(data, "merchant_uid"), h.MERCHANT_UID, "merchant_uid")
        amount = h.number(data, "amount", required=False) or None  # 0 = full, as documented
        checksum = h.number(data, "checksum", required=False)
        reason = h.text(data, "reason", required=False) or ""
    except h.BadRequest as exc:
        return h.bad_request(str(exc))
    if amount is not None and amount < 0:
        return h.bad_request("amount must be positive")
    fault = st.plan.draw(Endpoint.cancel, merchant_uid)
    if fault.ordering is Ordering.slow_processing:
        fault = Fault(Ordering.late, fault.delay_ms)

    async def record() -> web.Response:
        entry = CancelRecord(amount=0, reason=reason, cancelled_at=st.now(),
                             pg_tid=f"sbx_{secrets.token_hex(8)}",
                             cancellation_id=f"cnl_{secrets.token_hex(6)}")  # fmt: skip
        result = await st.ledger.cancel(merchant_uid, amount, checksum, entry)
        if isinstance(result, cards.Failure):
            return h.refused(result, code=1 if result is CANCEL_NOT_FOUND else -1)
        return h.ok(result.to_portone(pg=st.config.pg, origin=h.origin(request)))

    return await play(request, st, fault, record)


async def find(request: web.Request) -> web.Response:
    st = request.app[STATE]
    merchant_uid = request.match_info["merchant_uid"]
    wanted = request.match_info.get("payment_status")
    payment = await st.ledger.payment(merchant_uid, wanted or None)
    if payment is None:
        return h.envelope(1, _NOT_FOUND.text, status=404)
    return h.ok(payment.to_portone(pg=st.config.pg, origin=h.origin(request)))


async def find_all(request: web.Request) -> web.Response:
    st = request.app[STATE]
    merchant_uid = request.match_info["merchant_uid"]
    wanted = request.match_info.get("payment_status")
    found = await st.ledger.payments(merchant_uid, wanted or None)
    if not found:
        return h.envelope(1, _NOT_FOUND.text, status=404)
    page = [p.to_portone(pg=st.config.pg, origin=h.origin(request)) for p in found[:1000]]
    return h.ok({"total": len(found), "previous": 0, "next": 0, "list": page})
