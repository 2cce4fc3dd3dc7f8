"""PortOne answers turned into contract values (or the contract error they amount to).

The envelope's ``code`` comes first: non-zero means the PG refused before anything
happened (a decline for charges and registrations, a refusal for cancels). With
``code == 0`` a charge is judged by ``response.status``: ``paid`` succeeded, ``failed``
is a decline (``fail_reason``), ``ready`` is not finished (outcome unknown).
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.gateways.contract import (
    BillingKey,
    CancelResult,
    ChargeStatus,
    GatewayCharge,
    OrderStatus,
    PgState,
)
from ivr.gateways.declines import Decline, Stage, decline
from ivr.gateways.errors import (
    CancelRefused,
    CardDeclined,
    DuplicateOrder,
    GatewayError,
    GatewayRejected,
    GatewayUnavailable,
    OutcomeUnknown,
)
from ivr.gateways.portone import wire
from ivr.gateways.portone.errors import (
    DUPLICATE_ORDER,
    FIND_NOT_FOUND,
    cancel_refusal,
    decline_reason,
    pg_code,
)

_PAID_STATES = frozenset({"paid", "cancelled"})


@dataclass(frozen=True)
class Call:
    op: str
    mutating: bool
    order_id: str | None = None
    pg: str = ""  # the configured PG's code: whose decline codes a refusal carries


def unreadable(call: Call, what: str) -> GatewayError:
    """An answer we cannot read: a payment call may have happened, a read can be redone."""
    if call.mutating:
        return OutcomeUnknown(f"PortOne {call.op}: {what}", order_id=call.order_id)
    return GatewayUnavailable(f"PortOne {call.op}: {what}", retry_safe=True)


def _decline(message: str | None, stage: Stage, code: int | None = None, pg: str = "") -> Decline:
    return decline(decline_reason(message, pg), stage, pg_code(message, code))


def _payment(env: wire.PortOneEnvelope, call: Call) -> wire.Payment:
    if env.response is None:
        raise unreadable(call, "code 0 without a payment")
    try:
        return wire.payment(env.response)
    except wire.WireError:
        raise unreadable(call, "malformed payment") from None


def _state(p: wire.Payment, call: Call) -> PgState:
    try:
        return PgState(p.status)
    except ValueError:
        raise unreadable(call, "unknown payment status") from None


def billing_key(env: wire.PortOneEnvelope, call: Call, customer_uid: str) -> BillingKey:
    if env.code != 0:
        d = _decline(env.message, Stage.registration, env.code, call.pg)
        raise CardDeclined(f"PortOne: card not registered ({d.reason})", decline=d)
    if env.response is None:
        raise unreadable(call, "no billing key in the answer")
    try:
        return wire.billing_key(env.response, customer_uid)
    except wire.WireError:
        raise unreadable(call, "malformed billing key") from None


def charge(env: wire.PortOneEnvelope, call: Call, amount: int, months: int) -> GatewayCharge:
    order_id = call.order_id or ""
    if env.code != 0:  # refused before a payment was made
        if DUPLICATE_ORDER.search(env.message or ""):
            raise DuplicateOrder(f"PortOne {call.op}: order id already used", order_id=order_id)
        return GatewayCharge(order_id=order_id, status=ChargeStatus.failed, amount=amount,
                            pg_tx_id=None, approval_no=None, card_issuer=None, card_last4=None,
                            card_type=None, installment_months=months, paid_at=None,
                            decline=_decline(env.message, Stage.payment, env.code, call.pg),
                            refused=True)  # fmt: skip
    p = _payment(env, call)
    if p.merchant_uid != order_id or p.amount != amount:
        raise GatewayRejected(f"PortOne {call.op}: answer is for another order or amount")
    d: Decline | None = None
    if p.status in _PAID_STATES:  # "cancelled": a replay of a paid, later cancelled order
        status = ChargeStatus.succeeded
    elif p.status == "failed":
        status, d = (
            ChargeStatus.failed,
            _decline(p.fail_reason, Stage.payment, None, p.pg_provider or call.pg),
        )
    else:  # "ready": not finished at the PG
        raise OutcomeUnknown(f"PortOne {call.op}: payment is {p.status!r}", order_id=order_id)
    return GatewayCharge(
        order_id=order_id,
        status=status,
        amount=p.amount,
        pg_tx_id=p.imp_uid,
        approval_no=p.apply_num,
        card_issuer=p.card_name,
        card_last4=p.card_last4,
        card_type=p.card_type,
        installment_months=p.card_quota,
        paid_at=p.paid_at,
        decline=d,
        receipt_url=p.receipt_url if status is ChargeStatus.succeeded else None,
    )


def cancel(env: wire.PortOneEnvelope, call: Call, checksum: int) -> CancelResult:
    if env.code != 0:
        refusal = cancel_refusal(env.message)
        raise CancelRefused(
            f"PortOne refused to cancel {call.order_id} ({refusal})",
            reason=refusal,
            pg_code=pg_code(env.message, env.code),
        )
    p = _payment(env, call)
    state = _state(p, call)
    refundable = p.amount - p.cancel_amount
    return CancelResult(
        order_id=p.merchant_uid,
        pg_tx_id=p.imp_uid,
        # The PG verified ``checksum`` (the balance before), so the difference is exact.
        cancelled_now=checksum - refundable,
        cancelled_total=p.cancel_amount,
        refundable=refundable,
        state=state,
        cancelled_at=p.last_cancel_at or p.cancelled_at,
    )


def _order(p: wire.Payment, call: Call) -> OrderStatus:
    state = _state(p, call)
    pg = p.pg_provider or call.pg
    d = _decline(p.fail_reason, Stage.payment, None, pg) if state is PgState.failed else None
    return OrderStatus(
        order_id=p.merchant_uid,
        state=state,
        amount=p.amount,
        cancelled_amount=p.cancel_amount,
        pg_tx_id=p.imp_uid,
        approval_no=p.apply_num,
        card_issuer=p.card_name,
        card_last4=p.card_last4,
        paid_at=p.paid_at,
        failed_at=p.failed_at,
        cancelled_at=p.cancelled_at,
        decline=d,
        receipt_url=p.receipt_url if state in (PgState.paid, PgState.cancelled) else None,
    )


def _not_found(env: wire.PortOneEnvelope | None) -> bool:
    if env is None or (env.code == 0 and env.response is None):
        return True
    return env.code != 0 and FIND_NOT_FOUND.search(env.message or "") is not None


def order_status(env: wire.PortOneEnvelope | None, call: Call) -> OrderStatus | None:
    """``GET /payments/find/{merchant_uid}``: the order's newest payment."""
    if _not_found(env):
        return None
    assert env is not None
    if env.code != 0:
        raise GatewayRejected("PortOne find: refused", pg_code=pg_code(env.message, env.code))
    return _order(_payment(env, call), call)


# Which payment of an order answers "what happened to it": money moved beats money in
# flight beats a failure (PortOne may keep a failed payment and a later paid one under
# one merchant_uid).
_RANK: dict[PgState, int] = {
    PgState.paid: 0, PgState.cancelled: 0, PgState.ready: 1, PgState.failed: 2,
}  # fmt: skip


def order_status_all(env: wire.PortOneEnvelope | None, call: Call) -> OrderStatus | None:
    """``GET /payments/findAll/{merchant_uid}``: every payment of the order, judged as
    :meth:`~ivr.gateways.contract.Gateway.find` promises. Two paid payments for one
    order id would be a PG fault: refused (``GatewayRejected``) for a human to see."""
    if _not_found(env):
        return None
    assert env is not None
    if env.code != 0:
        raise GatewayRejected("PortOne find: refused", pg_code=pg_code(env.message, env.code))
    if env.response is None:
        raise unreadable(call, "code 0 without a payment list")
    try:
        payments = wire.payment_list(env.response)
    except wire.WireError:
        raise unreadable(call, "malformed payment list") from None
    if not payments:
        return None
    orders = [_order(p, call) for p in payments]  # newest first, as PortOne sorts
    if any(o.order_id != call.order_id for o in orders):
        raise GatewayRejected("PortOne find: answer is for another order")
    if sum(o.state in (PgState.paid, PgState.cancelled) for o in orders) > 1:
        raise GatewayRejected("PortOne find: two paid payments for one order id")
    return min(orders, key=lambda o: _RANK[o.state])  # stable: the newest of a rank
