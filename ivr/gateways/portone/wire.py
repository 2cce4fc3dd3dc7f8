"""PortOne REST v1 wire format: request bodies out, envelope and payment objects in.

Field names follow PortOne's v1 OpenAPI document (docs/portone.md cites it): card
numbers go as ``dddd-dddd-dddd-dddd``, expiry as ``YYYY-MM``, ``pwd_2digit``, ``birth``;
payments come back as ``PaymentAnnotation`` (``imp_uid``, ``merchant_uid``, ``status``,
``amount``, ``cancel_amount``, ``apply_num``, ``card_name``, ``card_number``, …) and
billing keys as ``CustomerAnnotation``. Times are UNIX seconds; 0 means "not yet".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ivr.domain.states import CardType
from ivr.gateways.contract import (
    BillingKey,
    Buyer,
    CancelRequest,
    ChargeRequest,
    KeyedCard,
    KeyedChargeRequest,
)
from ivr.gateways.portone.pgs import PLAIN_ORDER_ID, PgRules, provider, rules_for

Json = dict[str, Any]

# PortOne's maxLength of the fields we shorten rather than refuse (v1 OpenAPI).
NAME_MAX = 40  # name (주문명)
BUYER_NAME_MAX = 16  # buyer_name
CUSTOMER_NAME_MAX = 20  # customer_name


class WireError(ValueError):
    """The answer is not the shape PortOne documents."""


class NotSendable(ValueError):
    """The request cannot go to the configured PG as it is (a field its PG requires is
    unknown, an option it does not support, an order id it refuses). Nothing was sent;
    ``code`` is the short code kept for the operator (``arspay:missing_buyer_name``)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Account:
    """What the merchant's PortOne account adds to requests (``gateway.*`` settings)."""

    channel_key: str
    pg: str = ""  # the pg selector: {PG} or {PG}.{MID}; empty: the account's default PG
    product_type: str = ""  # real | digital (KSNET)
    buyer_email: str = ""  # for PGs that require buyer_email

    @property
    def rules(self) -> PgRules:
        return rules_for(self.pg)


def _extra_fields(
    required: frozenset[str], account: Account, buyer: Buyer | None, *, holder: bool = False
) -> Json:
    """The per-PG required fields the common body lacks, from what the engine knows.
    Card fields and ``name`` are always sent, so they are not looked up here."""
    person = buyer or Buyer()
    known = {
        "buyer_name": person.name.strip()[:BUYER_NAME_MAX],
        "buyer_tel": person.tel,
        "buyer_email": account.buyer_email,
        "product_type": account.product_type,
        "customer_name": person.name.strip()[:CUSTOMER_NAME_MAX] if holder else "",
    }
    out: Json = {}
    for name in sorted(required - {"birth", "pwd_2digit", "name"}):
        value = known.get(name, "")
        if not value:
            raise NotSendable(f"arspay:missing_{name}")
        out[name] = value
    return out


def _order_id(order_id: str, rules: PgRules) -> str:
    if rules.plain_order_ids and PLAIN_ORDER_ID.fullmatch(order_id) is None:
        raise NotSendable("arspay:merchant_uid_format")  # Smartro: letters and digits only
    return order_id


@dataclass(frozen=True)
class PortOneEnvelope:
    code: int
    message: str | None
    response: Mapping[str, Any] | None


def parse_envelope(raw: bytes) -> PortOneEnvelope:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # (deep nesting)
        raise WireError("not JSON") from None
    if not isinstance(data, dict) or type(data.get("code")) is not int:
        raise WireError("no integer 'code'")
    message = data.get("message")
    response = data.get("response")
    if response is not None and not isinstance(response, dict):
        raise WireError("'response' is not an object")
    return PortOneEnvelope(
        code=data["code"],
        message=message if isinstance(message, str) else None,
        response=response,
    )


def card_number(number: str) -> str:
    """``dddd-dddd-dddd-dddd`` for 16 digits (the documented form); others as they are."""
    if len(number) == 16:
        return "-".join(number[i : i + 4] for i in range(0, 16, 4))
    return number


def _card_fields(card: KeyedCard) -> Json:
    """``pwd_2digit`` left out when there is none (a stored card's billing key: the
    v1 document marks it optional, required per PG — :mod:`.pgs`)."""
    out: Json = {"card_number": card_number(card.number), "expiry": card.expiry,
                 "birth": card.birth}  # fmt: skip
    if card.has_password:
        out["pwd_2digit"] = card.password_2digits
    return out


def _payment_options(installment_months: int, interest_free: bool, supported: bool) -> Json:
    out: Json = {}
    if installment_months:
        out["card_quota"] = installment_months
    if interest_free:  # the merchant pays the interest (never for an issuer's promotion)
        if not supported:
            raise NotSendable("arspay:interest_free_by_merchant_unsupported")
        out["interest_free_by_merchant"] = True
    return out


def billing_key_body(card: KeyedCard, account: Account, holder: Buyer | None = None) -> Json:
    """POST /subscribe/customers/{customer_uid}: ``channel_key`` is required by the v1
    API; ``pg`` picks the PG when the account has more than one."""
    body = _card_fields(card)
    body["channel_key"] = account.channel_key
    if account.pg:
        body["pg"] = account.pg
    body.update(_extra_fields(account.rules.register, account, holder, holder=True))
    return body


def again_body(req: ChargeRequest, account: Account) -> Json:
    """POST /subscribe/payments/again (the billing key knows its PG: no ``pg``)."""
    rules = account.rules
    return {
        "customer_uid": req.customer_uid,
        "merchant_uid": _order_id(req.order_id, rules),
        "amount": req.amount,
        "name": req.order_name[:NAME_MAX],
        **_payment_options(
            req.installment_months,
            req.interest_free,
            not account.pg or rules.merchant_interest_again,
        ),
        **_extra_fields(rules.again, account, req.buyer),
    }


def onetime_body(req: KeyedChargeRequest, account: Account) -> Json:
    """POST /subscribe/payments/onetime (no ``channel_key`` in the v1 API; ``pg`` picks
    the PG)."""
    rules = account.rules
    body: Json = {
        "merchant_uid": _order_id(req.order_id, rules),
        "amount": req.amount,
        "name": req.order_name[:NAME_MAX],
        **_card_fields(req.card),
        **_payment_options(
            req.installment_months,
            req.interest_free,
            not account.pg or rules.merchant_interest_onetime,
        ),
        **_extra_fields(rules.onetime, account, req.buyer),
    }
    if account.pg:
        body["pg"] = account.pg
    if req.save_as_customer_uid is not None:
        body["customer_uid"] = req.save_as_customer_uid
    return body


def delete_query(reason: str, account: Account) -> dict[str, str]:
    """DELETE /subscribe/customers/{customer_uid}: ``reason``, and ``extra[requester]``
    where the API has it (Naver Pay only; the engine deletes as the merchant: admin)."""
    query = {"reason": reason[:100]}
    if provider(account.pg) == "naverpay":
        query["extra[requester]"] = "admin"
    return query


def cancel_body(req: CancelRequest) -> Json:
    """POST /payments/cancel (``amount`` omitted = cancel everything left)."""
    body: Json = {"merchant_uid": req.order_id, "reason": req.reason, "checksum": req.checksum}
    if req.amount is not None:
        body["amount"] = req.amount
    return body


def get_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value != "" else None


def get_int(obj: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)  # PortOne documents amounts as "number"
    raise WireError(f"'{key}' is not an integer")


def get_time(obj: Mapping[str, Any], key: str) -> datetime | None:
    seconds = get_int(obj, key)
    try:
        return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None
    except (OverflowError, OSError, ValueError):  # beyond time_t, or past the year 9999
        raise WireError(f"'{key}' is not a time") from None


def card_type(obj: Mapping[str, Any]) -> CardType | None:
    value = obj.get("card_type")  # 0 credit, 1 check; null when the PG does not say
    if value in (0, "0"):
        return CardType.credit
    if value in (1, "1"):
        return CardType.check
    return None


def last4(obj: Mapping[str, Any]) -> str | None:
    masked = get_str(obj, "card_number")
    if masked and len(masked) >= 4 and masked[-4:].isdigit():
        return masked[-4:]
    return None


def billing_key(customer: Mapping[str, Any], customer_uid: str) -> BillingKey:
    """A ``CustomerAnnotation``."""
    return BillingKey(
        customer_uid=get_str(customer, "customer_uid") or customer_uid,
        issuer=get_str(customer, "card_name"),
        issuer_code=get_str(customer, "card_code"),
        last4=last4(customer),
        card_type=card_type(customer),
        pg_provider=get_str(customer, "pg_provider"),
        registered_at=get_time(customer, "inserted"),
    )


@dataclass(frozen=True)
class Payment:
    """The part of a ``PaymentAnnotation`` the contract uses."""

    imp_uid: str | None
    merchant_uid: str
    status: str
    amount: int
    cancel_amount: int
    apply_num: str | None
    card_name: str | None
    card_last4: str | None
    card_type: CardType | None
    card_quota: int
    paid_at: datetime | None
    failed_at: datetime | None
    cancelled_at: datetime | None
    fail_reason: str | None
    last_cancel_at: datetime | None  # of the latest cancel_history entry
    pg_provider: str = ""  # which PG answered (its decline codes)
    receipt_url: str | None = None  # unchecked: the connector filters it (receipts.kept)


def payment(obj: Mapping[str, Any]) -> Payment:
    merchant_uid = get_str(obj, "merchant_uid")
    status = get_str(obj, "status")
    if merchant_uid is None or status is None:
        raise WireError("payment without merchant_uid/status")
    history = obj.get("cancel_history")
    last_cancel_at: datetime | None = None
    if isinstance(history, list) and history:
        entries = [h for h in history if isinstance(h, dict)]
        if entries:
            latest = max(entries, key=lambda h: get_int(h, "cancelled_at"))
            last_cancel_at = get_time(latest, "cancelled_at")
    return Payment(
        imp_uid=get_str(obj, "imp_uid"),
        merchant_uid=merchant_uid,
        status=status,
        amount=get_int(obj, "amount"),
        cancel_amount=get_int(obj, "cancel_amount"),
        apply_num=get_str(obj, "apply_num"),
        card_name=get_str(obj, "card_name"),
        card_last4=last4(obj),
        card_type=card_type(obj),
        card_quota=get_int(obj, "card_quota"),
        paid_at=get_time(obj, "paid_at"),
        failed_at=get_time(obj, "failed_at"),
        cancelled_at=get_time(obj, "cancelled_at"),
        fail_reason=get_str(obj, "fail_reason"),
        last_cancel_at=last_cancel_at,
        pg_provider=get_str(obj, "pg_provider") or "",
        receipt_url=get_str(obj, "receipt_url"),
    )


def payment_list(obj: Mapping[str, Any]) -> list[Payment]:
    """A ``PagedPaymentAnnotation`` (``{total, previous, next, list}``)."""
    items = obj.get("list")
    if not isinstance(items, list):
        raise WireError("no payment 'list'")
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise WireError("a payment in 'list' is not an object")
        out.append(payment(item))
    return out
