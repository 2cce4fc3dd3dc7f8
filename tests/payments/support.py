"""Shared set-up for payment tests: a merchant, customers and cards registered at the
sandbox PG (billing keys), on an engine database."""

from __future__ import annotations

from datetime import UTC, datetime

from ivr.domain.ids import new_id
from ivr.gateways.contract import BillingKeyRequest, Gateway
from ivr.store.db import Database
from ivr.store.tables import Card, Customer, Merchant
from tests.gateways.support import card as card_data

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def merchant_with_cards(
    db: Database, pg: Gateway, numbers: list[str]
) -> tuple[str, dict[str, str]]:
    """A merchant and one registered card per number; returns (merchant_id, number -> card_id)."""
    mid = new_id("mer")
    cards: dict[str, str] = {}
    async with db.transaction() as s:
        s.add(Merchant(id=mid, name="행복치과", status="active", settings={}, created_at=NOW))
    for i, number in enumerate(numbers):
        cid, card_id, uid = new_id("cus"), new_id("card"), f"cu_{new_id('cus')}"
        await pg.issue_billing_key(BillingKeyRequest(uid, card_data(number)))
        async with db.transaction() as s:
            s.add(
                Customer(
                    id=cid,
                    merchant_id=mid,
                    external_ref=None,
                    name="",
                    mobile=f"0101234{i:04d}",
                    created_at=NOW,
                )
            )
            await s.flush()
            s.add(
                Card(
                    id=card_id,
                    merchant_id=mid,
                    customer_id=cid,
                    vault_token=f"tok_{card_id}",
                    fingerprint=None,
                    bin6=number[:6],
                    last4=number[-4:],
                    issuer="테스트카드",
                    card_type="credit",
                    owner_type="personal",
                    billing_key_ref=uid,
                    status="active",
                    created_at=NOW,
                )
            )
        cards[number] = card_id
    return mid, cards
