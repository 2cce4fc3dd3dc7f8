"""Registered cards: the engine's view of a card (vault token, BIN6, last 4, issuer,
type, PG billing-key reference) and its life cycle ``active -> deleted``.

The engine never holds card data: a card row is made from the vault's metadata and the
PG's billing-key answer. Deleting a card erases its vault record for good (the
ciphertext is gone, docs/product.md §5) and marks the row ``deleted``; the row stays for the
payments that reference it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ivr.audit import audit_row
from ivr.clock import Clock
from ivr.domain.ids import new_id
from ivr.domain.states import CARD, CardOwner, CardStatus, CardType
from ivr.domain.text import clean_text
from ivr.errors import NotFound
from ivr.store.db import Database
from ivr.store.scope import Scope
from ivr.store.tables import Card, Customer
from vault.client import VaultClient
from vault.errors import TokenNotFound
from vault.models import CardMetadata

UNKNOWN_ISSUER = "테스트카드"  # docs/product.md §7: an unknown BIN reads as the test issuer


def new_card(
    meta: CardMetadata,
    *,
    customer_id: str,
    billing_key_ref: str | None,
    issuer: str | None,
    card_type: str | None,
    now: datetime,
) -> Card:
    """A card row from vault metadata and the PG's answer (the PG is authoritative; the
    vault's BIN table next; neither knowing: ``unknown``, never assumed credit)."""
    kind = card_type or meta.card_type or CardType.unknown.value
    return Card(
        id=new_id("card"),
        merchant_id=meta.merchant_id,
        customer_id=customer_id,
        vault_token=meta.token,
        fingerprint=meta.fingerprint,
        bin6=meta.bin6,
        last4=meta.last4,
        issuer=(issuer or meta.issuer or UNKNOWN_ISSUER)[:40],
        card_type=CardType(kind).value,
        owner_type=CardOwner(meta.owner_type).value,
        billing_key_ref=billing_key_ref,
        status=CardStatus.active.value,
        created_at=now,
    )


@dataclass(eq=False)
class CardService:
    db: Database
    clock: Clock
    vault: VaultClient | None

    async def add_in(
        self,
        s: AsyncSession,
        meta: CardMetadata,
        *,
        customer_id: str,
        billing_key_ref: str | None,
        issuer: str | None,
        card_type: str | None,
        actor: str,
        status: CardStatus = CardStatus.active,
        pg_account_id: str | None = None,
    ) -> Card:
        """Attach a tokenized card to a customer in the caller's transaction; its
        billing key is held at ``pg_account_id`` (None: default)."""
        await Scope.of(meta.merchant_id).one(s, Customer, customer_id, "customer")
        card = new_card(
            meta,
            customer_id=customer_id,
            billing_key_ref=billing_key_ref,
            issuer=issuer,
            card_type=card_type,
            now=self.clock.now(),
        )
        card.pg_account_id = pg_account_id
        if status is CardStatus.deleted:  # a one-off card: kept for the record only
            card.status = CARD.check(CardStatus.active, CardStatus.deleted).value
            card.deleted_at = self.clock.now()
        s.add(card)
        audit_row(s, self.clock, actor, "card.add", card,
                  {"customer_id": customer_id, "bin6": meta.bin6, "last4": meta.last4})  # fmt: skip
        return card

    async def get(self, merchant_id: str, card_id: str) -> Card:
        async with self.db.sessions() as s:
            return await Scope.of(merchant_id).one(s, Card, card_id, "card")

    async def active_for(self, merchant_id: str, customer_id: str) -> list[Card]:
        """The customer's active cards, newest first."""
        async with self.db.sessions() as s:
            rows = await s.scalars(
                Scope.of(merchant_id)
                .select(Card, customer_id=customer_id, status=CardStatus.active.value)
                .order_by(Card.created_at.desc(), Card.id.desc())
            )
            return list(rows)

    async def delete(self, merchant_id: str, card_id: str, *, actor: str, why: str) -> Card:
        """Mark the card deleted and erase its vault record (idempotent)."""
        why = clean_text(why, "reason", max_length=200)  # kept in both audit logs
        async with self.db.transaction() as s:
            card = await Scope.of(merchant_id).one(s, Card, card_id, "card", lock=True)
            if card.status == CardStatus.active.value:
                card.status = CARD.check(card.status, CardStatus.deleted).value
                card.deleted_at = self.clock.now()
                audit_row(s, self.clock, actor, "card.delete", card, {"why": why[:200]})
        await self.erase(card, actor=actor, why=why)
        return card

    async def erase(self, card: Card, *, actor: str, why: str) -> None:
        """Erase the card's vault record; a record already gone is fine."""
        if self.vault is None:
            raise NotFound("no vault is configured: the card's vault record cannot be erased")
        with contextlib.suppress(TokenNotFound):
            await self.vault.delete(card.vault_token, card.merchant_id, who=actor, why=why)
