"""The vault's :class:`vault.forwarding.CardGateway`, backed by engine
:class:`~ivr.gateways.contract.Gateway` connectors (PortOne v1, V2 or the sandbox PG).

This adapter runs inside the vault process: the vault decrypts a card, calls it with
the transient 2-digit password, and wipes the plaintext afterwards; the engine only
ever sees the result. Expiry is stored MMYY in the vault and sent YYYY-MM to the PG.

A call without a route goes to the default gateway (the ``[gateway]`` account); one
with a :class:`~vault.forwarding.Route` (already allowed by the vault's host list) to
the gateway ``build`` made for that PG account, kept per account and connection: a
changed secret builds a new one. :meth:`VaultCardGateway.aclose` closes the built ones
(the default gateway belongs to whoever made it).

What the engine fails over on: a billing key the PG did not answer for
(:class:`GatewayUnavailable`, :class:`OutcomeUnknown` but :class:`DuplicateOrder`) is a
result with ``pg_down``; a keyed charge refused before it was sent
(:class:`GatewayUnavailable` with ``retry_safe``) is ``not_sent``, one that may have
reached the PG ``unknown``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from ivr.gateways.contract import (
    BillingKeyRequest,
    ChargeStatus,
    Gateway,
    KeyedCard,
    KeyedChargeRequest,
)
from ivr.gateways.errors import CardDeclined, DuplicateOrder, GatewayUnavailable, OutcomeUnknown
from ivr.gateways.factory import ConnectedGateway
from vault.card import CardData as VaultCard
from vault.errors import GatewayNotConfigured
from vault.forwarding import BillingKeyResult, ChargeResult, Order, Route

RouteBuilder = Callable[[Route], ConnectedGateway]


def _card(card: VaultCard, password2: str) -> KeyedCard:
    month, year = card.expiry[:2], card.expiry[2:]
    return KeyedCard(
        number=card.pan, expiry=f"20{year}-{month}", birth=card.birth, password_2digits=password2
    )


def connection_digest(route: Route) -> str:
    """A digest of everything a route's gateway is built from (kind, URL, connection):
    a changed secret is another gateway. Never logged."""
    material = json.dumps(
        [route.kind, route.base_url, sorted(route.connection.items())], ensure_ascii=False
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class VaultCardGateway:
    def __init__(self, gateway: Gateway | None, build: RouteBuilder | None = None) -> None:
        self.gateway = gateway  # the default account's; None: routes only
        self.build = build
        self._built: dict[str, tuple[str, ConnectedGateway]] = {}  # account -> (digest, gw)
        self._retired: list[ConnectedGateway] = []  # replaced; closed with the rest

    def __repr__(self) -> str:
        return f"VaultCardGateway(routes={sorted(self._built)})"

    def for_route(self, route: Route | None) -> Gateway:
        """The gateway to use: the default one, or ``route``'s (built once per account
        and connection)."""
        if route is None:
            if self.gateway is None:
                raise GatewayNotConfigured("no default card gateway is configured in the vault")
            return self.gateway
        if self.build is None:
            raise GatewayNotConfigured("this vault does not forward to other PG accounts")
        digest = connection_digest(route)
        cached = self._built.get(route.account_id)
        if cached is not None and cached[0] == digest:
            return cached[1]
        # Building does not await: no other call can build the same account meanwhile.
        gateway = self.build(route)
        if cached is not None:  # its secret or URL changed; calls may still be using it
            self._retired.append(cached[1])
        self._built[route.account_id] = (digest, gateway)
        return gateway

    async def aclose(self) -> None:
        built = [gw for _, gw in self._built.values()] + self._retired
        self._built.clear()
        self._retired.clear()
        for gateway in built:
            await gateway.aclose()

    async def issue_billing_key(
        self, card: VaultCard, password2: str, customer_uid: str, *, route: Route | None = None
    ) -> BillingKeyResult:
        gateway = self.for_route(route)
        try:
            key = await gateway.register_billing_key(
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
        except DuplicateOrder:
            raise
        except (GatewayUnavailable, OutcomeUnknown):
            return BillingKeyResult(ok=False, customer_uid=customer_uid, pg_down=True,
                                    message="the PG did not answer")  # fmt: skip
        card_type = key.card_type.value if key.card_type is not None else None
        return BillingKeyResult(
            ok=True, customer_uid=key.customer_uid, card_issuer=key.issuer, card_type=card_type
        )

    async def keyed_charge(
        self, card: VaultCard, password2: str, order: Order, *, route: Route | None = None
    ) -> ChargeResult:
        gateway = self.for_route(route)
        request = KeyedChargeRequest(
            card=_card(card, password2),
            order_id=order.order_id,
            amount=order.amount,
            order_name=order.order_name,
            installment_months=order.installment_months,
        )
        try:
            result = await gateway.keyed_charge(request)
        except GatewayUnavailable as exc:
            if not exc.retry_safe:
                raise
            return ChargeResult(status="not_sent", order_id=order.order_id, amount=order.amount)
        except OutcomeUnknown:
            return ChargeResult(status="unknown", order_id=order.order_id, amount=order.amount)
        if result.status is ChargeStatus.succeeded:
            return ChargeResult(
                status="succeeded",
                order_id=order.order_id,
                amount=result.amount,
                pg_transaction_id=result.pg_tx_id,
                approval_number=result.approval_no,
                receipt_url=result.receipt_url,
            )
        d = result.decline
        return ChargeResult(
            status="failed",
            order_id=order.order_id,
            amount=order.amount,
            decline_code=d.reason.value if d else "rejected",
            decline_kind=d.kind.value if d else "hard",
        )
