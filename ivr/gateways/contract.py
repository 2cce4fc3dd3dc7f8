"""The connector contract: what the engine asks of any PG, as dataclasses in and out.

Amounts (``int`` KRW, at least 100) and installment months follow the product's charge
terms (:mod:`ivr.domain.terms`). ``order_id`` is the id of one charge attempt (PortOne
``merchant_uid``, see :func:`ivr.domain.ids.new_order_id`); ``customer_uid`` names one
registered card at the PG (its billing key). Card fields are ``repr=False``: printing a
request never shows them.

How a caller reads the outcome of a charge:

* ``GatewayCharge.status == succeeded`` — paid; ``pg_tx_id``/``approval_no`` set.
* ``GatewayCharge.status == failed`` — declined; ``decline`` says soft/hard, why, and the
  prompt to play. Nothing was charged.
* :class:`~ivr.gateways.errors.GatewayUnavailable` — not charged; retry per ``retry_safe``.
* :class:`~ivr.gateways.errors.OutcomeUnknown` — maybe charged: call :meth:`Gateway.find`
  with the same ``order_id`` before anything else. Retrying with the *same* order id is
  idempotent at the sandbox; a new order id is a new charge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from ivr.domain.states import CardType  # credit | check (체크카드: no installments)
from ivr.domain.terms import check_amount, check_months
from ivr.errors import InvalidInput
from ivr.gateways.declines import Decline

_UID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_ORDER = re.compile(r"[A-Za-z0-9_-]{1,40}")  # PortOne merchant_uid: at most 40 characters
_PAN = re.compile(r"\d{14,16}")
_EXPIRY = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_BIRTH = re.compile(r"\d{6}|\d{10}")
_PWD = re.compile(r"\d{2}")
NO_PASSWORD = ""  # a stored card re-issued elsewhere: the password is never stored


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise InvalidInput(f"invalid {what}")  # never echo the value: it may be card data


def _check_uid(value: str, what: str, pattern: re.Pattern[str] = _UID) -> None:
    _check(isinstance(value, str) and pattern.fullmatch(value) is not None, what)


@dataclass(frozen=True)
class KeyedCard:
    """What the payer keyed (docs/product.md §2 "카-유-생-비"). Lives in memory only."""

    number: str = field(repr=False)  # 14-16 digits, no separators
    expiry: str = field(repr=False)  # YYYY-MM
    birth: str = field(repr=False)  # YYMMDD, or the 10-digit BRN of a corporate card
    # first two digits of the card password; NO_PASSWORD ("") only to issue a billing key
    # for a stored card (a card migration): a charge with keyed data always has them
    password_2digits: str = field(repr=False)

    def __post_init__(self) -> None:
        _check(_PAN.fullmatch(self.number) is not None, "card number")
        _check(_EXPIRY.fullmatch(self.expiry) is not None, "card expiry (YYYY-MM)")
        _check(_BIRTH.fullmatch(self.birth) is not None, "birth date / BRN")
        _check(
            self.password_2digits == NO_PASSWORD
            or _PWD.fullmatch(self.password_2digits) is not None,
            "card password digits",
        )

    @property
    def has_password(self) -> bool:
        return self.password_2digits != NO_PASSWORD

    @property
    def last4(self) -> str:
        return self.number[-4:]


@dataclass(frozen=True)
class Buyer:
    """Who pays, as the engine knows them: the customer's name and mobile. A connector
    sends what its PG requires and nothing more (PortOne: ``buyer_name``/``buyer_tel``,
    ``customer_name`` at registration; docs/portone.md "Per-PG fields")."""

    name: str = field(default="", repr=False)
    tel: str = field(default="", repr=False)  # digits, 010XXXXXXXX


@dataclass(frozen=True)
class BillingKeyRequest:
    customer_uid: str
    card: KeyedCard
    holder: Buyer | None = None  # the card holder, for PGs that want a name

    def __post_init__(self) -> None:
        _check_uid(self.customer_uid, "customer_uid")


@dataclass(frozen=True)
class BillingKey:
    customer_uid: str
    issuer: str | None  # 카드사명, e.g. "KB국민카드"
    issuer_code: str | None  # PortOne card_code
    last4: str | None
    card_type: CardType | None  # None: the PG did not say (PortOne: null on Inicis billing)
    pg_provider: str | None
    registered_at: datetime | None


@dataclass(frozen=True)
class ChargeRequest:
    """Charge a registered card (PortOne "again")."""

    customer_uid: str
    order_id: str
    amount: int
    order_name: str
    installment_months: int = 0  # 0 = 일시불
    # The merchant pays the installment interest under its own contract with the PG
    # (PortOne interest_free_by_merchant). Not for a card company's own interest-free
    # promotion: the issuer applies that by itself and nothing is sent for it.
    interest_free: bool = False
    buyer: Buyer | None = None

    def __post_init__(self) -> None:
        _check_uid(self.customer_uid, "customer_uid")
        _check_uid(self.order_id, "order_id", _ORDER)
        check_amount(self.amount)
        _check(bool(self.order_name.strip()), "order name")
        check_months(self.installment_months)


@dataclass(frozen=True)
class KeyedChargeRequest:
    """One-time charge with card data (PortOne "onetime"). ``save_as_customer_uid``
    also registers the card under that uid when the charge succeeds (docs/product.md,
    ``pay.save_card``)."""

    card: KeyedCard
    order_id: str
    amount: int
    order_name: str
    installment_months: int = 0
    interest_free: bool = False  # merchant-paid interest, as in ChargeRequest
    save_as_customer_uid: str | None = None
    buyer: Buyer | None = None

    def __post_init__(self) -> None:
        _check(self.card.has_password, "card password digits")  # billing keys only
        _check_uid(self.order_id, "order_id", _ORDER)
        check_amount(self.amount)
        _check(bool(self.order_name.strip()), "order name")
        check_months(self.installment_months)
        if self.save_as_customer_uid is not None:
            _check_uid(self.save_as_customer_uid, "customer_uid")


class ChargeStatus(StrEnum):
    succeeded = "succeeded"
    failed = "failed"


@dataclass(frozen=True)
class GatewayCharge:
    order_id: str
    status: ChargeStatus
    amount: int
    pg_tx_id: str | None  # PortOne imp_uid
    approval_no: str | None  # 승인번호 (apply_num)
    card_issuer: str | None
    card_last4: str | None
    card_type: CardType | None  # None: the PG did not say
    installment_months: int
    paid_at: datetime | None
    decline: Decline | None = None  # set when status is failed
    # The PG refused the request itself (no payment was recorded by it). On the first
    # request of an order id that is a decline; when the same order id was sent before,
    # it may be the PG's duplicate-order refusal of an order already paid: look it up.
    refused: bool = False
    # The PG's receipt (매출전표) page, when it gave one on an allowed host
    # (ivr/gateways/receipts.py); never card data.
    receipt_url: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is ChargeStatus.succeeded

    @classmethod
    def declined(
        cls, order_id: str, amount: int, decline: Decline, *, months: int = 0, refused: bool = False
    ) -> GatewayCharge:
        """A failed charge: nothing charged, ``decline`` says why."""
        return cls(order_id=order_id, status=ChargeStatus.failed, amount=amount, pg_tx_id=None,
                   approval_no=None, card_issuer=None, card_last4=None, card_type=None,
                   installment_months=months, paid_at=None, decline=decline,
                   refused=refused)  # fmt: skip


@dataclass(frozen=True)
class CancelRequest:
    """Cancel ``amount`` (``None`` = everything left). ``checksum`` is the refundable
    balance the caller believes is left; the PG refuses when its own differs."""

    order_id: str
    reason: str
    checksum: int
    amount: int | None = None

    def __post_init__(self) -> None:
        _check_uid(self.order_id, "order_id", _ORDER)
        _check(type(self.checksum) is int and self.checksum >= 0, "checksum")
        if self.amount is not None:
            _check(type(self.amount) is int and self.amount > 0, "cancel amount")
            _check(self.amount <= self.checksum, "cancel amount (over the refundable balance)")
        _check(bool(self.reason.strip()), "cancel reason")


class PgState(StrEnum):
    """The PG's view of an order (PortOne ``status``). A partly cancelled order stays
    ``paid`` with ``cancelled_amount > 0``."""

    ready = "ready"
    paid = "paid"
    failed = "failed"
    cancelled = "cancelled"


@dataclass(frozen=True)
class OrderStatus:
    order_id: str
    state: PgState
    amount: int
    cancelled_amount: int
    pg_tx_id: str | None
    approval_no: str | None
    card_issuer: str | None
    card_last4: str | None
    paid_at: datetime | None
    failed_at: datetime | None
    cancelled_at: datetime | None
    decline: Decline | None = None  # set when state is failed
    receipt_url: str | None = None  # as in GatewayCharge

    @property
    def refundable(self) -> int:
        if self.state in (PgState.paid, PgState.cancelled):
            return self.amount - self.cancelled_amount
        return 0


@dataclass(frozen=True)
class CancelResult:
    order_id: str
    pg_tx_id: str | None
    cancelled_now: int  # by this request
    cancelled_total: int
    refundable: int  # left after this request
    state: PgState
    cancelled_at: datetime | None


class Gateway(Protocol):
    """A payment gateway. Implementations: PortOne v1 (also speaks to the sandbox PG)."""

    async def register_billing_key(self, req: BillingKeyRequest) -> BillingKey:
        """Register a card; raises CardDeclined when the issuer refuses it. Safe to
        repeat with the same ``customer_uid`` (the PG replaces the key)."""
        ...

    async def charge_billing_key(self, req: ChargeRequest) -> GatewayCharge: ...

    async def keyed_charge(self, req: KeyedChargeRequest) -> GatewayCharge: ...

    async def cancel(self, req: CancelRequest) -> CancelResult: ...

    async def find(self, order_id: str) -> OrderStatus | None:
        """The PG's record of an order; ``None`` when the PG never saw it. An order id
        may carry several payments at the PG (failed ones, then a paid one): the answer
        is the paid (or cancelled) one when there is one, else one still in progress
        (``ready``), else the newest failed one."""
        ...

    async def delete_billing_key(self, customer_uid: str, *, reason: str) -> bool:
        """Delete a billing key at the PG (PortOne: ``DELETE /subscribe/customers/…``);
        ``False`` when the PG does not know it (already deleted). Safe to repeat."""
        ...
