"""PortOne V2 wire format: request bodies out, response objects in (no contract decisions).

Field names follow PortOne's V2 OpenAPI document (``tests/data/portone/v2.openapi.json``;
docs/portone.md §6 cites it): card credentials go as ``method.card.credential``
(``number`` digits only, ``expiryYear``/``expiryMonth`` two digits each,
``birthOrBusinessRegistrationNumber``, ``passwordTwoDigits``); amounts as
``amount.total`` with ``currency: "KRW"``; times are RFC 3339 strings. Payments come
back as ``Payment`` (one of ``PaidPayment``, ``FailedPayment``, … by ``status``),
billing keys as ``BillingKeyInfo`` (by ``status``), errors as ``{type, message}``
(``PgProviderError`` adds ``pgCode``/``pgMessage``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ivr.domain.states import CardType
from ivr.gateways.contract import CancelRequest, ChargeRequest, KeyedCard, KeyedChargeRequest
from ivr.gateways.portone.wire import WireError, get_int, get_str

Json = dict[str, Any]
CURRENCY = "KRW"

__all__ = ["WireError", "get_int", "get_str"]


def parse_object(raw: bytes) -> Mapping[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise WireError("not JSON") from None
    if not isinstance(data, dict):
        raise WireError("not a JSON object")
    return data


def credential(card: KeyedCard) -> Json:
    """``CardCredential``: the expiry ``YYYY-MM`` becomes ``expiryYear`` "YY" and
    ``expiryMonth`` "MM" (the document says two digits each)."""
    year, month = card.expiry.split("-")
    out: Json = {
        "number": card.number,
        "expiryYear": year[2:],
        "expiryMonth": month,
        "birthOrBusinessRegistrationNumber": card.birth,
    }
    if card.has_password:  # optional in CardCredential; left out for a stored card's key
        out["passwordTwoDigits"] = card.password_2digits
    return out


def _scope(store_id: str, channel_key: str) -> Json:
    out: Json = {"storeId": store_id} if store_id else {}
    if channel_key:
        out["channelKey"] = channel_key
    return out


def billing_key_body(card: KeyedCard, customer_uid: str, store_id: str, channel_key: str) -> Json:
    """``POST /billing-keys`` (``IssueBillingKeyBody``): ``customer.id`` carries our
    ``customer_uid``, so the key can be found again by it (``filter.customerId``)."""
    return {
        **_scope(store_id, channel_key),
        "method": {"card": {"credential": credential(card)}},
        "customer": {"id": customer_uid},
    }


def _installments(months: int, interest_free: bool) -> Json:
    out: Json = {}
    if months:
        out["installmentMonth"] = months
        if interest_free:  # "무이자 할부 이자를 고객사가 부담할지 여부": 일시불 has none
            out["useFreeInterestFromMerchant"] = True
    return out


def billing_key_payment_body(
    req: ChargeRequest, billing_key: str, store_id: str, channel_key: str
) -> Json:
    """``POST /payments/{paymentId}/billing-key`` (``BillingKeyPaymentInput``)."""
    return {
        **_scope(store_id, channel_key),
        "billingKey": billing_key,
        "orderName": req.order_name,
        "customer": {"id": req.customer_uid},
        "amount": {"total": req.amount},
        "currency": CURRENCY,
        **_installments(req.installment_months, req.interest_free),
    }


def instant_payment_body(req: KeyedChargeRequest, store_id: str, channel_key: str) -> Json:
    """``POST /payments/{paymentId}/instant`` (``InstantPaymentInput``, card method)."""
    card: Json = {
        "credential": credential(req.card),
        **_installments(req.installment_months, req.interest_free),
    }
    return {
        **_scope(store_id, channel_key),
        "method": {"card": card},
        "orderName": req.order_name,
        "amount": {"total": req.amount},
        "currency": CURRENCY,
    }


def cancel_body(req: CancelRequest, store_id: str) -> Json:
    """``POST /payments/{paymentId}/cancel`` (``CancelPaymentBody``): ``amount``
    omitted = everything left; ``currentCancellableAmount`` is the checksum ("본 취소
    요청 이전의 취소 가능 잔액 … 일치하는 경우에만 취소가 진행됩니다")."""
    body: Json = {
        **_scope(store_id, ""),
        "reason": req.reason,
        "currentCancellableAmount": req.checksum,
    }
    if req.amount is not None:
        body["amount"] = req.amount
    return body


def billing_keys_query(customer_uid: str, store_id: str) -> Json:
    """``GET /billing-keys`` (``GetBillingKeyInfosBody``): the issued keys of one
    customer id, newest first."""
    flt: Json = {"customerId": customer_uid, "status": ["ISSUED"]}
    if store_id:
        flt["storeId"] = store_id
    return {
        "page": {"number": 0, "size": 10},
        "sort": {"by": "ISSUED_AT", "order": "DESC"},
        "filter": flt,
    }


# --- answers ------------------------------------------------------------------------


def get_time(obj: Mapping[str, Any], key: str) -> datetime | None:
    value = get_str(obj, key)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise WireError(f"'{key}' is not an RFC 3339 time") from None


def _obj(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WireError(f"'{key}' is not an object")
    return value


@dataclass(frozen=True)
class ErrorBody:
    """``{type, message}``; ``PgProviderError`` adds ``pgCode``/``pgMessage``."""

    type: str | None
    pg_code: str | None
    pg_message: str | None


def error_body(raw: bytes) -> ErrorBody:
    try:
        data = parse_object(raw)
    except WireError:
        return ErrorBody(None, None, None)
    pg_code, pg_message = get_str(data, "pgCode"), get_str(data, "pgMessage")
    failures = data.get("failures")  # ChannelSpecificError: the first channel's failure
    if pg_code is None and isinstance(failures, list) and failures:
        first = failures[0] if isinstance(failures[0], dict) else {}
        pg_code, pg_message = get_str(first, "pgCode"), get_str(first, "pgMessage")
    return ErrorBody(get_str(data, "type"), pg_code, pg_message)


def issued(obj: Mapping[str, Any]) -> tuple[str, datetime | None, str | None]:
    """``IssueBillingKeyResponse`` → (billingKey, issuedAt, the first channel's pgProvider)."""
    info = _obj(obj, "billingKeyInfo")
    key = get_str(info, "billingKey")
    if key is None:
        raise WireError("no billingKeyInfo.billingKey")
    channels = info.get("channels")
    first = channels[0] if isinstance(channels, list) and channels else {}
    provider = get_str(first, "pgProvider") if isinstance(first, dict) else None
    return key, get_time(info, "issuedAt"), provider


def paid(obj: Mapping[str, Any]) -> tuple[str | None, datetime | None]:
    """``PayWithBillingKeyResponse`` / ``PayInstantlyResponse`` → (pgTxId, paidAt)."""
    summary = obj.get("payment")
    if not isinstance(summary, dict):
        raise WireError("no payment")
    return get_str(summary, "pgTxId"), get_time(summary, "paidAt")


@dataclass(frozen=True)
class CardInfo:
    """``Card``: issuer code, product name, type, masked number."""

    issuer: str | None
    name: str | None
    type: CardType | None
    last4: str | None


_CARD_TYPES = {"CREDIT": CardType.credit, "DEBIT": CardType.check, "GIFT": CardType.check}


def card_info(card: Mapping[str, Any]) -> CardInfo:
    masked = get_str(card, "number")
    last4 = masked[-4:] if masked and len(masked) >= 4 and masked[-4:].isdigit() else None
    kind = get_str(card, "type")
    return CardInfo(
        issuer=get_str(card, "issuer"),
        name=get_str(card, "name"),
        type=_CARD_TYPES.get(kind) if kind else None,
        last4=last4,
    )


def _card_method(methods: Any) -> Mapping[str, Any]:
    """The card of a ``BillingKeyPaymentMethod`` list / a ``PaymentMethod``."""
    items = methods if isinstance(methods, list) else [methods]
    for m in items:
        if isinstance(m, dict) and m.get("type") in (
            "BillingKeyPaymentMethodCard",
            "PaymentMethodCard",
        ):
            return m
    return {}


@dataclass(frozen=True)
class KeyInfo:
    """``BillingKeyInfo`` (``IssuedBillingKeyInfo`` / ``DeletedBillingKeyInfo``)."""

    billing_key: str
    status: str
    customer_id: str | None
    card: CardInfo
    pg_provider: str | None
    issued_at: datetime | None


def key_info(obj: Mapping[str, Any]) -> KeyInfo:
    billing_key, status = get_str(obj, "billingKey"), get_str(obj, "status")
    if billing_key is None or status is None:
        raise WireError("billing key without billingKey/status")
    channels = obj.get("channels")
    first = channels[0] if isinstance(channels, list) and channels else {}
    return KeyInfo(
        billing_key=billing_key,
        status=status,
        customer_id=get_str(_obj(obj, "customer"), "id"),
        card=card_info(_obj(_card_method(obj.get("methods")), "card")),
        pg_provider=get_str(first, "pgProvider") if isinstance(first, dict) else None,
        issued_at=get_time(obj, "issuedAt"),
    )


def key_list(obj: Mapping[str, Any]) -> list[KeyInfo]:
    """``GetBillingKeyInfosResponse`` (``{items, page}``)."""
    items = obj.get("items")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise WireError("no billing key 'items'")
    return [key_info(i) for i in items]


@dataclass(frozen=True)
class Payment:
    """The part of a V2 ``Payment`` the contract uses."""

    id: str
    status: str
    total: int
    cancelled: int
    pg_tx_id: str | None
    approval_no: str | None
    card: CardInfo
    installment_months: int
    paid_at: datetime | None
    failed_at: datetime | None
    cancelled_at: datetime | None
    pg_code: str | None  # failure.pgCode
    pg_message: str | None  # failure.pgMessage (read to classify, never kept)
    receipt_url: str | None = None  # receiptUrl, unchecked: the connector filters it


def payment(obj: Mapping[str, Any]) -> Payment:
    payment_id, status = get_str(obj, "id"), get_str(obj, "status")
    if payment_id is None or status is None:
        raise WireError("payment without id/status")
    amount, failure = _obj(obj, "amount"), _obj(obj, "failure")
    method = _card_method(obj.get("method"))
    return Payment(
        id=payment_id,
        status=status,
        total=get_int(amount, "total"),
        cancelled=get_int(amount, "cancelled"),
        pg_tx_id=get_str(obj, "pgTxId"),
        approval_no=get_str(method, "approvalNumber"),
        card=card_info(_obj(method, "card")),
        installment_months=get_int(_obj(method, "installment"), "month"),
        paid_at=get_time(obj, "paidAt"),
        failed_at=get_time(obj, "failedAt"),
        cancelled_at=get_time(obj, "cancelledAt"),
        pg_code=get_str(failure, "pgCode"),
        pg_message=get_str(failure, "pgMessage") or get_str(failure, "reason"),
        receipt_url=get_str(obj, "receiptUrl"),
    )


@dataclass(frozen=True)
class Cancellation:
    """``PaymentCancellation`` (``SUCCEEDED``/``REQUESTED``/``FAILED``)."""

    status: str
    total: int
    cancelled_at: datetime | None


def cancellation(obj: Mapping[str, Any]) -> Cancellation:
    c = _obj(obj, "cancellation")
    status = get_str(c, "status")
    if status is None:
        raise WireError("cancellation without status")
    return Cancellation(status, get_int(c, "totalAmount"), get_time(c, "cancelledAt"))
