"""The durable per-card limit on knowledge-factor failures (ivr/cards/verification.py)
on SQLite and PostgreSQL: reservations under the card's row lock, so racing calls get
no more tries than the limit, and a success does not wipe a burst's failures."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from ivr.cards.verification import CardVerification, VerifyLimits
from ivr.clock import FakeClock
from ivr.domain.ids import new_id
from ivr.errors import NotFound
from ivr.store.db import Database
from ivr.store.tables import Card, Customer, Merchant

pytestmark = pytest.mark.anyio

LIMITS = VerifyLimits(max_failures=5, window=timedelta(hours=24))


async def a_card(db: Database, clock: FakeClock) -> Card:
    mid, cid = new_id("mer"), new_id("cus")
    now = clock.now()
    async with db.transaction() as s:
        s.add(Merchant(id=mid, name="행복치과", status="active", settings={}, created_at=now))
        await s.flush()
        s.add(Customer(id=cid, merchant_id=mid, external_ref=None, name="", mobile="01012345678",
                       created_at=now))  # fmt: skip
        await s.flush()
        card = Card(id=new_id("card"), merchant_id=mid, customer_id=cid, vault_token="tok_x",
                    fingerprint=None, bin6="411111", last4="1111", issuer="테스트카드",
                    card_type="credit", owner_type="personal", billing_key_ref="cu_1",
                    status="active", created_at=now)  # fmt: skip
        s.add(card)
    return card


async def test_racing_checks_get_no_more_tries_than_the_limit(
    db: Database, clock: FakeClock
) -> None:
    card = await a_card(db, clock)
    guard = CardVerification(db, clock)
    got = await asyncio.gather(*(guard.reserve(card.id, LIMITS) for _ in range(12)))
    assert sorted(got) == [False] * 7 + [True] * 5


async def test_a_success_gives_back_only_its_own_reservation(
    db: Database, clock: FakeClock
) -> None:
    card = await a_card(db, clock)
    guard = CardVerification(db, clock)
    for _ in range(4):
        assert await guard.reserve(card.id, LIMITS)
        assert not await guard.failed(card.id, LIMITS, actor="t")
    assert await guard.reserve(card.id, LIMITS)
    await guard.give_back(card.id)  # the right answer at the end of a burst
    assert await guard.reserve(card.id, LIMITS)  # still one try left, not five
    assert await guard.failed(card.id, LIMITS, actor="t")  # the 5th failure locks
    assert await guard.is_locked(card.id) == clock.now() + timedelta(hours=24)
    assert not await guard.reserve(card.id, LIMITS)


async def test_failures_age_out_and_a_lock_runs_out(db: Database, clock: FakeClock) -> None:
    card = await a_card(db, clock)
    guard = CardVerification(db, clock)
    for _ in range(4):
        await guard.reserve(card.id, LIMITS)
        await guard.failed(card.id, LIMITS, actor="t")
    clock.advance(timedelta(hours=24, seconds=1))
    for _ in range(4):  # a new window: four more without a lock
        assert await guard.reserve(card.id, LIMITS)
        assert not await guard.failed(card.id, LIMITS, actor="t")
    assert await guard.reserve(card.id, LIMITS)
    assert await guard.failed(card.id, LIMITS, actor="t")
    clock.advance(timedelta(hours=23))
    assert not await guard.reserve(card.id, LIMITS)
    clock.advance(timedelta(hours=1, seconds=1))
    assert await guard.is_locked(card.id) is None
    assert await guard.reserve(card.id, LIMITS)


async def test_unlock_is_scoped_to_the_merchant(db: Database, clock: FakeClock) -> None:
    card = await a_card(db, clock)
    guard = CardVerification(db, clock)
    await guard.lock(card.id, LIMITS, actor="t")
    with pytest.raises(NotFound):
        await guard.unlock("mer_other", card.id, actor="t")
    assert await guard.is_locked(card.id) is not None
    row = await guard.unlock(card.merchant_id, card.id, actor="t")
    assert (row.verify_failures, row.verify_locked_until) == (0, None)
    assert await guard.reserve(card.id, LIMITS)
