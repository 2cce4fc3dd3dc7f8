"""Sandbox endpoints on recorded payments: cancel and find.

``POST /payments/cancel`` follows PortOne's documented checks: the order must exist and
be paid; ``checksum`` (when given) must equal the refundable balance; ``amount``
(missing or 0 = everything left) must not exceed it. Refusals are HTTP 200 with a
non-zero code (``1`` for a missing order, as PortOne answers). ``GET
/payments/find/{merchant_uid}[/{payment_status}]`` answers 404 for an unknown order.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from ivr.gateways.sandbox import cards
from ivr.gateways.sandbox import http as h
from ivr.gateways.sandbox.ledger import CANCEL_NOT_FOUND
from ivr.gateways.sandbox.records import CancelRecord
from ivr.gateways.sandbox.state import STATE

_NOT_FOUND = cards.Failure("NOT_FOUND", "존재하지 않는 결제정보입니다.")


async def cancel(request: web.Request) -> web.Response:
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
    if st.inject_500():
        return h.server_error(cards.INJECTED)
    entry = CancelRecord(amount=0, reason=reason, cancelled_at=st.now(),
                         pg_tid=f"sbx_{secrets.token_hex(8)}",
                         cancellation_id=f"cnl_{secrets.token_hex(6)}")  # fmt: skip
    result = await st.ledger.cancel(merchant_uid, amount, checksum, entry)
    if isinstance(result, cards.Failure):
        return h.refused(result, code=1 if result is CANCEL_NOT_FOUND else -1)
    return h.ok(result.to_portone())


async def find(request: web.Request) -> web.Response:
    st = request.app[STATE]
    merchant_uid = request.match_info["merchant_uid"]
    wanted = request.match_info.get("payment_status")
    payment = await st.ledger.payment(merchant_uid)
    if payment is None or (wanted and payment.status != wanted):
        return h.envelope(1, _NOT_FOUND.text, status=404)
    return h.ok(payment.to_portone())
