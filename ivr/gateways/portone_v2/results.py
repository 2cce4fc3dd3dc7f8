"""PortOne V2 answers turned into contract values (or the contract error they amount to).

:func:`reply` reads the HTTP layer once for every operation (2xx → the object; a typed
error → its :class:`~ivr.gateways.portone_v2.wire.ErrorBody`; 429 → retry-safe
unavailability; any other 5xx, or an error status without a typed body → an unknown
outcome for a payment call, a refusal otherwise). The functions after it read one
operation's answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar

from ivr.gateways.contract import (
    BillingKey,
    CancelResult,
    ChargeStatus,
    GatewayCharge,
    OrderStatus,
    PgState,
)
from ivr.gateways.declines import Decline, DeclineReason, Stage, decline
from ivr.gateways.errors import (
    AuthenticationFailed,
    CancelRefused,
    CardDeclined,
    DuplicateOrder,
    GatewayError,
    GatewayRejected,
    GatewayUnavailable,
    OutcomeUnknown,
)
from ivr.gateways.portone.results import Call, unreadable
from ivr.gateways.portone_v2 import wire
from ivr.gateways.portone_v2.errors import (
    Http,
    Meaning,
    cancel_refusal,
    http_outcome,
    meaning,
    pg_decline,
    short_code,
)

# V2 ``Payment.status`` → the contract's state. A partly cancelled payment stays
# ``paid`` (the contract reads ``cancelled_amount``); READY and PAY_PENDING are not
# finished; a virtual account is not a card payment, but not money either.
STATES: Final[dict[str, PgState]] = {
    "PAID": PgState.paid,
    "PARTIAL_CANCELLED": PgState.paid,
    "CANCELLED": PgState.cancelled,
    "FAILED": PgState.failed,
    "READY": PgState.ready,
    "PAY_PENDING": PgState.ready,
    "VIRTUAL_ACCOUNT_ISSUED": PgState.ready,
}

# Card company codes → names, from the V2 document's ``PgPromotionCardCompany`` titles;
# an unlisted code is shown as the card's product name, else as the code.
ISSUER_NAMES: Final[dict[str, str]] = {
    "BC_CARD": "BC카드",
    "KOOKMIN_CARD": "국민카드",
    "SHINHAN_CARD": "신한카드",
    "SAMSUNG_CARD": "삼성카드",
    "HYUNDAI_CARD": "현대카드",
    "LOTTE_CARD": "롯데카드",
    "HANA_CARD": "하나카드",
    "NH_CARD": "NH카드",
    "WOORI_CARD": "우리카드",
    "CITI_CARD": "씨티카드",
    "SUHYUP_CARD": "수협카드",
    "JEJU_CARD": "제주카드",
    "GWANGJU_CARD": "광주카드",
    "JEONBUK_CARD": "전북카드",
    "KAKAO_BANK": "카카오뱅크",
    "K_BANK": "케이뱅크",
    "TOSS_BANK": "토스뱅크",
    "EPOST": "우체국",
    "KFCC": "새마을금고",
    "SHINHYUP": "신협",
    "KOREA_DEVELOPMENT_BANK": "KDB산업은행",
}


def issuer_name(card: wire.CardInfo) -> str | None:
    if card.issuer is not None and card.issuer in ISSUER_NAMES:
        return ISSUER_NAMES[card.issuer]
    return card.name or card.issuer


T = TypeVar("T")
PAYMENT_OPS: Final = frozenset({"charge_billing_key", "keyed_charge"})


@dataclass(frozen=True)
class Reply:
    status: int
    body: Mapping[str, Any] | None  # the 2xx object
    error: wire.ErrorBody | None  # a typed error


def reply(call: Call, status: int, raw: bytes) -> Reply:
    outcome = http_outcome(status)
    if outcome is Http.throttled:
        raise GatewayUnavailable(f"PortOne V2 {call.op}: HTTP {status}", retry_safe=True)
    if outcome is Http.unknown:
        raise unreadable(call, f"HTTP {status}")
    if outcome is Http.ok:
        try:
            return Reply(status, wire.parse_object(raw), None)
        except wire.WireError:
            raise unreadable(call, f"malformed answer (HTTP {status})") from None
    err = wire.error_body(raw)
    if err.type is None:  # no typed body: a proxy, a wrong base_url…
        if status == 502:
            raise unreadable(call, "HTTP 502 without an error type")
        raise GatewayRejected(f"PortOne V2 {call.op}: HTTP {status}", pg_status=status)
    if meaning(err.type) is Meaning.auth:
        raise AuthenticationFailed("PortOne V2 refused the API secret", pg_status=status)
    return Reply(status, None, err)


def _read(call: Call, r: Reply, parse: Callable[[Mapping[str, Any]], T], what: str) -> T:
    """A 2xx body through ``parse``; a body not shaped as documented is unreadable (an
    unknown outcome for a payment call)."""
    assert r.body is not None
    try:
        return parse(r.body)
    except wire.WireError:
        raise unreadable(call, f"malformed {what}") from None


def refusal(call: Call, r: Reply) -> GatewayError:
    """The error for a typed refusal the operation has no better word for."""
    err = r.error
    assert err is not None
    m = meaning(err.type)
    if m in (Meaning.duplicate, Meaning.in_progress) and call.op in PAYMENT_OPS:
        return DuplicateOrder(
            f"PortOne V2 {call.op}: order id already used", order_id=call.order_id
        )
    if m is Meaning.in_progress:  # the same request, still running: its outcome is open
        return OutcomeUnknown(
            f"PortOne V2 {call.op}: still being processed", order_id=call.order_id
        )
    return GatewayRejected(
        f"PortOne V2 {call.op}: {err.type}", pg_status=r.status, pg_code=short_code(None, err.type)
    )


def _decline(err: wire.ErrorBody, stage: Stage) -> Decline:
    if meaning(err.type) is Meaning.declined:
        return pg_decline(err.pg_code, err.pg_message, err.type, stage)
    return decline(DeclineReason.rejected, stage, short_code(None, err.type))


def issued_key(call: Call, r: Reply) -> tuple[str, datetime | None, str | None]:
    """``IssueBillingKeyResponse`` → (billingKey, issuedAt, pgProvider); a declined
    card raises :class:`CardDeclined`."""
    if r.error is not None:
        if meaning(r.error.type) in (Meaning.declined, Meaning.refused):
            d = _decline(r.error, Stage.registration)
            raise CardDeclined(f"PortOne V2: card not registered ({d.reason})", decline=d)
        raise refusal(call, r)
    return _read(call, r, wire.issued, "billing key")


def billing_key(
    customer_uid: str, info: wire.KeyInfo | None, issued_at: datetime | None, provider: str | None
) -> BillingKey:
    """The contract's key: our ``customer_uid`` (the PG's billingKey stays inside the
    connector), the card as ``GET /billing-keys/{billingKey}`` describes it."""
    card = info.card if info is not None else wire.CardInfo(None, None, None, None)
    return BillingKey(
        customer_uid=customer_uid,
        issuer=issuer_name(card),
        issuer_code=card.issuer,
        last4=card.last4,
        card_type=card.type,
        pg_provider=(info.pg_provider if info is not None else None) or provider,
        registered_at=(info.issued_at if info is not None else None) or issued_at,
    )


def failed_charge(
    order_id: str, amount: int, months: int, d: Decline, *, refused: bool
) -> GatewayCharge:
    return GatewayCharge.declined(order_id, amount, d, months=months, refused=refused)


@dataclass(frozen=True)
class Charged:
    """What a payment call's answer proves: paid (``pg_tx_id``, ``paid_at``), or the
    charge it amounts to otherwise, and whether the billing key was gone."""

    paid: bool
    pg_tx_id: str | None = None
    paid_at: datetime | None = None
    failed: GatewayCharge | None = None
    key_gone: bool = False


def charged(call: Call, r: Reply, amount: int, months: int) -> Charged:
    """``PayWithBillingKeyResponse`` / ``PayInstantlyResponse`` (``payment.pgTxId``,
    ``payment.paidAt``), or the refusal: a PG decline is a failed charge (V2 records
    it as a FAILED payment); a refusal before any payment (a deleted billing key,
    too many attempts) is a failed charge with ``refused``; ALREADY_PAID is
    :class:`DuplicateOrder`."""
    order_id = call.order_id or ""
    if r.error is not None:
        m = meaning(r.error.type)
        if m is Meaning.declined:
            d = _decline(r.error, Stage.payment)
            return Charged(False, failed=failed_charge(order_id, amount, months, d, refused=False))
        if m in (Meaning.refused, Meaning.key_gone):
            d = _decline(r.error, Stage.payment)
            return Charged(
                False,
                failed=failed_charge(order_id, amount, months, d, refused=True),
                key_gone=m is Meaning.key_gone,
            )
        raise refusal(call, r)
    pg_tx_id, paid_at = _read(call, r, wire.paid, "payment")
    return Charged(True, pg_tx_id, paid_at)


def succeeded(
    order_id: str,
    amount: int,
    months: int,
    done: Charged,
    found: OrderStatus | None,
    card: wire.CardInfo | None,
) -> GatewayCharge:
    """A paid charge, with the approval number and card from a lookup when one answered."""
    return GatewayCharge(
        order_id=order_id,
        status=ChargeStatus.succeeded,
        amount=amount,
        pg_tx_id=done.pg_tx_id or (found.pg_tx_id if found else None),
        approval_no=found.approval_no if found else None,
        card_issuer=found.card_issuer if found else None,
        card_last4=found.card_last4 if found else None,
        card_type=card.type if card else None,
        installment_months=months,
        paid_at=done.paid_at or (found.paid_at if found else None),
        receipt_url=found.receipt_url if found else None,
    )


def order(call: Call, r: Reply) -> tuple[OrderStatus, wire.CardInfo] | None:
    """``GET /payments/{paymentId}``: the contract's view of the payment; ``None`` for
    PAYMENT_NOT_FOUND."""
    if r.error is not None:
        if meaning(r.error.type) is Meaning.no_payment:
            return None
        raise refusal(call, r)
    p = _read(call, r, wire.payment, "payment")
    if p.id != call.order_id:
        raise GatewayRejected(f"PortOne V2 {call.op}: answer is for another payment")
    state = STATES.get(p.status)
    if state is None:
        raise unreadable(call, "unknown payment status")
    d = (
        pg_decline(p.pg_code, p.pg_message, None, Stage.payment)
        if state is PgState.failed
        else None
    )
    status = OrderStatus(
        order_id=p.id,
        state=state,
        amount=p.total,
        cancelled_amount=p.cancelled,
        pg_tx_id=p.pg_tx_id,
        approval_no=p.approval_no,
        card_issuer=issuer_name(p.card),
        card_last4=p.card.last4,
        paid_at=p.paid_at,
        failed_at=p.failed_at,
        cancelled_at=p.cancelled_at if p.status == "CANCELLED" else None,
        decline=d,
        receipt_url=p.receipt_url if state in (PgState.paid, PgState.cancelled) else None,
    )
    return status, p.card


def cancelled(call: Call, r: Reply) -> wire.Cancellation:
    """``CancelPaymentResponse``: SUCCEEDED is returned; REQUESTED (the PG cancels
    later) is an unknown outcome; FAILED and every typed refusal raise CancelRefused."""
    if r.error is not None:
        m = meaning(r.error.type)
        if m in (Meaning.cancel, Meaning.no_payment, Meaning.declined):
            reason = cancel_refusal(r.error.type)
            raise CancelRefused(
                f"PortOne V2 refused to cancel {call.order_id} ({reason})",
                reason=reason,
                pg_code=short_code(r.error.pg_code, r.error.type),
            )
        raise refusal(call, r)
    c = _read(call, r, wire.cancellation, "cancellation")
    if c.status == "SUCCEEDED":
        return c
    if c.status == "FAILED":
        raise CancelRefused(
            f"PortOne V2 cancel of {call.order_id} failed",
            pg_code="portone_v2:FAILED",
            reason=cancel_refusal(None),
        )
    raise OutcomeUnknown(f"PortOne V2 {call.op}: cancellation {c.status}", order_id=call.order_id)


def cancel_result(c: wire.Cancellation, checksum: int, found: OrderStatus) -> CancelResult:
    return CancelResult(
        order_id=found.order_id,
        pg_tx_id=found.pg_tx_id,
        # The PG verified ``checksum`` (currentCancellableAmount, the balance before).
        cancelled_now=c.total,
        cancelled_total=found.cancelled_amount,
        refundable=checksum - c.total,
        state=found.state,
        cancelled_at=c.cancelled_at,
    )


def key_list(call: Call, r: Reply) -> list[wire.KeyInfo]:
    if r.error is not None:
        raise refusal(call, r)
    return _read(call, r, wire.key_list, "billing key list")


def key_detail(call: Call, r: Reply) -> wire.KeyInfo | None:
    if r.error is not None:
        if meaning(r.error.type) is Meaning.key_gone:
            return None
        raise refusal(call, r)
    return _read(call, r, wire.key_info, "billing key")


def deleted(call: Call, r: Reply) -> bool:
    """``DELETE /billing-keys/{billingKey}``: True when deleted now, False when the key
    was gone already (not found, deleted, never issued)."""
    if r.error is None:
        return True
    m = meaning(r.error.type)
    if m is Meaning.key_gone:
        return False
    if m is Meaning.declined:
        raise GatewayRejected(
            f"PortOne V2 {call.op}: the PG refused",
            pg_code=short_code(r.error.pg_code, r.error.type),
        )
    raise refusal(call, r)
