"""Fakes for the card-migration tests: a vault that issues keys by script, a book of
fake gateways per account, and a merchant with cards."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from ivr.clock import FakeClock
from ivr.domain.ids import new_id
from ivr.gateways.contract import Gateway
from ivr.gateways.fake import FakeGateway
from ivr.pg_accounts.migration import CardMigrator
from ivr.pg_accounts.model import account_key
from ivr.store.db import Database
from ivr.store.tables import Card, Customer, Merchant
from vault.client import VaultClient
from vault.forwarding import BillingKeyResult

LEASE = timedelta(seconds=30)

# what the fake vault does for a token: None (issue), an exception to raise, or a
# BillingKeyResult to answer (a decline)
Action = BaseException | BillingKeyResult | None


@dataclass
class FakeVault:
    script: dict[str, list[Action]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)  # customer_uids the "PG" issued
    crash_after_issue: set[str] = field(default_factory=set)  # issue, then raise (lost)
    pause: float = 0.0

    async def issue_billing_key(self, token: str, merchant_id: str, **kw: Any) -> BillingKeyResult:
        self.calls.append({"token": token, "merchant_id": merchant_id, **kw})
        await asyncio.sleep(self.pause)
        queue = self.script.get(token, [])
        action = queue.pop(0) if queue else None
        if isinstance(action, BaseException):
            raise action
        if isinstance(action, BillingKeyResult):
            return action
        self.issued.append(kw["customer_uid"])
        if token in self.crash_after_issue:
            self.crash_after_issue.discard(token)
            raise ConnectionResetError("the answer was lost")
        return BillingKeyResult(ok=True, customer_uid=kw["customer_uid"], card_issuer="테스트카드")


class Book:
    """Fake gateways per account (the lead's GatewayBook)."""

    def __init__(self) -> None:
        self.gateways: dict[str, FakeGateway] = {}
        self.routes: list[str | None] = []

    def gateway(self, account: str | None) -> FakeGateway:
        return self.gateways.setdefault(account_key(account), FakeGateway())

    async def of(self, account_id: str | None) -> Gateway:
        return self.gateway(account_id)

    async def vault_route(self, account_id: str | None) -> object | None:
        self.routes.append(account_id)
        return None


@dataclass
class World:
    db: Database
    clock: FakeClock
    vault: FakeVault
    book: Book
    merchant: str
    cards: list[str]

    def migrator(self, **kw: Any) -> CardMigrator:
        kw.setdefault("lease", LEASE)
        kw.setdefault("window_s", 0.0)  # no batching window: the steps in call order
        return CardMigrator(self.db, self.clock, cast(VaultClient, self.vault), self.book, **kw)

    async def card(self, card_id: str) -> Card:
        async with self.db.sessions() as s:
            row = await s.get(Card, card_id)
        assert row is not None
        return row


async def add_cards(
    db: Database, clock: FakeClock, merchant: str, n: int, *, account: str | None = None,
    status: str = "active", mutate: Callable[[Card], None] | None = None,
) -> list[str]:  # fmt: skip
    now = clock.now()
    ids = []
    async with db.transaction() as s:
        for _ in range(n):
            cid, card_id = new_id("cus"), new_id("card")
            s.add(Customer(id=cid, merchant_id=merchant, external_ref=None, name="",
                           mobile="01012345678", created_at=now))  # fmt: skip
            await s.flush()
            card = Card(id=card_id, merchant_id=merchant, customer_id=cid,
                        vault_token=f"tok_{card_id}", fingerprint=None, bin6="411111",
                        last4="1111", issuer="테스트카드", card_type="credit",
                        owner_type="personal", billing_key_ref=f"old_{card_id}",
                        status=status, created_at=now, pg_account_id=account)  # fmt: skip
            if mutate:
                mutate(card)
            s.add(card)
            ids.append(card_id)
    return ids


async def world(db: Database, clock: FakeClock, n: int = 3) -> World:
    merchant = new_id("mer")
    async with db.transaction() as s:
        s.add(Merchant(id=merchant, name="행복치과", status="active", settings={},
                       created_at=clock.now()))  # fmt: skip
    cards = await add_cards(db, clock, merchant, n)
    return World(db, clock, FakeVault(), Book(), merchant, cards)
