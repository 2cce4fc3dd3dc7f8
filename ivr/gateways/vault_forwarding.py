"""The vault's :class:`vault.forwarding.CardGateway`, backed by an engine
:class:`~ivr.gateways.contract.Gateway` (PortOne v1 or the sandbox PG).

This adapter runs inside the vault process: the vault decrypts a card, calls it with
the transient 2-digit password, and wipes the plaintext afterwards; the engine only
ever sees the result. Expiry is stored MMYY in the vault and sent YYYY-MM to the PG.
"""

from __future__ import annotations

from ivr.gateways.contract import (
    BillingKeyRequest,
    ChargeStatus,
    Gateway,
    KeyedCard,
    KeyedChargeRequest,
)
from ivr.gateways.errors import CardDeclined, OutcomeUnknown
from vault.card import CardData as VaultCard
from vault.forwarding import BillingKeyResult, ChargeResult, Order


def _card(card: VaultCard, password2: str) -> KeyedCard:
    month, year = card.expiry[:2], card.expiry[2:]
    return KeyedCard(
        number=card.pan, expiry=f"20{year}-{month}", birth=card.birth, password_2digits=password2
    )


class VaultCardGateway:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def issue_billing_key(
        self, card: VaultCard, password2: str, customer_uid: str
    ) -> BillingKeyResult:
        try:
            key = await self.gateway.register_billing_key(
                BillingKeyRequest(customer_uid, _card(card, password2))
            )
        except CardDeclined as exc:
            d = exc.decline
            return BillingKeyResult(
                ok=False,
                customer_uid=customer_uid,
                decline_code=d.reason.value,
                decline_kind=d.kind.value,
            )
        card_type = key.card_type.value if key.card_type is not None else None
        return BillingKeyResult(
            ok=True, customer_uid=key.customer_uid, card_issuer=key.issuer, card_type=card_type
        )

    async def keyed_charge(self, card: VaultCard, password2: str, order: Order) -> ChargeResult:
        request = KeyedChargeRequest(
            card=_card(card, password2),
            order_id=order.order_id,
            amount=order.amount,
            order_name=order.order_name,
            installment_months=order.installment_months,
        )
        try:
            result = await self.gateway.keyed_charge(request)
        except OutcomeUnknown:
            return ChargeResult(status="unknown", order_id=order.order_id, amount=order.amount)
        if result.status is ChargeStatus.succeeded:
            return ChargeResult(
                status="succeeded",
                order_id=order.order_id,
                amount=result.amount,
                pg_transaction_id=result.pg_tx_id,
                approval_number=result.approval_no,
            )
        d = result.decline
        return ChargeResult(
            status="failed",
            order_id=order.order_id,
            amount=order.amount,
            decline_code=d.reason.value if d else "rejected",
            decline_kind=d.kind.value if d else "hard",
        )
