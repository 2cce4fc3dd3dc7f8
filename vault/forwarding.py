"""The payment-gateway contract for operations that need the plaintext card.

The vault never hands a decrypted card to the engine. Issuing a billing key and keyed
(one-time) charges run inside the vault: it decrypts the record, calls a
:class:`CardGateway` with the card and the transient 2-digit password, wipes its
buffers and returns only the gateway's result. The payment-gateway issue implements
:class:`CardGateway` (PortOne v1, the sandbox PG); tests use a recording fake.

Rules for implementations: never log, store or echo ``card`` or ``password2``; raise
:class:`~vault.errors.ArspayError` subclasses (their ``error_id`` crosses the vault
socket); report declines in the result, not as exceptions. Any other exception is
replaced by :class:`~vault.errors.GatewayFailed` carrying only the exception's type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from vault.card import CardData

DeclineKind = Literal["soft", "hard"]


@dataclass(frozen=True)
class BillingKeyResult:
    ok: bool
    customer_uid: str  # the billing key reference at the PG (PortOne: customer_uid)
    card_issuer: str | None = None
    card_type: str | None = None  # credit | check, as the PG reports it
    decline_code: str | None = None
    decline_kind: DeclineKind | None = None
    message: str | None = None  # the PG's message, which must not contain card data


@dataclass(frozen=True)
class Order:
    """What a keyed (one-time) charge asks for, beside the card and its password: one
    value through the vault's client, its service and the :class:`CardGateway`. The
    vault checks it (:meth:`vault.service.LocalVault.keyed_charge`)."""

    order_id: str
    amount: int  # KRW
    order_name: str
    installment_months: int  # 0 = lump sum, else 2-36


@dataclass(frozen=True)
class ChargeResult:
    status: Literal["succeeded", "failed", "unknown"]
    order_id: str
    amount: int  # KRW
    pg_transaction_id: str | None = None
    approval_number: str | None = None
    decline_code: str | None = None
    decline_kind: DeclineKind | None = None
    message: str | None = None


class CardGateway(Protocol):
    async def issue_billing_key(
        self, card: CardData, password2: str, customer_uid: str
    ) -> BillingKeyResult: ...

    async def keyed_charge(self, card: CardData, password2: str, order: Order) -> ChargeResult: ...
