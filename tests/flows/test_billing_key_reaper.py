"""Deleted cards lose their billing key at the PG too (the flow-test stack: real store,
vault and sandbox PG over HTTP)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from ivr.cards.billing_keys import ACTOR, BillingKeyReaper
from ivr.domain.ids import new_order_id
from ivr.domain.states import CallRequestKind
from ivr.gateways.contract import ChargeRequest, ChargeStatus
from ivr.gateways.fake import FakeGateway, Outcome
from ivr.store.tables import AuditLog, Card, PaymentIntent
from ivr.telephony.fake import Press

from .conftest import Stack
from .test_flow_registration import card_keys, cards

pytestmark = pytest.mark.anyio

AFTER = timedelta(minutes=60)


async def registered(stack: Stack, number: str) -> Card:
    await stack.request(CallRequestKind.registration)
    assert (await stack.call([Press("1"), *card_keys(number)]))[0] == "completed"
    [card] = [c for c in await cards(stack) if c.last4 == number[-4:]]
    return card


async def reload(stack: Stack, card_id: str) -> Card:
    async with stack.db.sessions() as s:
        card = await s.get(Card, card_id)
    assert card is not None
    return card


async def test_a_deleted_cards_key_is_deleted_at_the_pg_once_and_for_good(stack: Stack) -> None:
    pg = stack.runtime.gateway
    kept = await registered(stack, "4111111111111111")
    gone = await registered(stack, "5555555555554444")
    other = await registered(stack, "4012888888881881")
    assert (await stack.sandbox.summary())["customers"] == 3
    for card in (gone, other):
        await stack.runtime.deps.cards.delete(stack.merchant_id, card.id, actor="t", why="test")
    reaper = BillingKeyReaper(stack.db, pg, stack.clock, after=AFTER)
    assert (await reaper.reap()).deleted == 0  # deleted a minute ago: a call may need it
    stack.clock.advance(AFTER + timedelta(minutes=1))

    down_pg = FakeGateway().always("delete_billing_key", Outcome.unavailable)
    down = BillingKeyReaper(stack.db, down_pg, stack.clock, after=AFTER)
    assert (await down.reap()).failed == 2
    assert (await reload(stack, gone.id)).billing_key_deleted_at is None  # tried again later

    report = await reaper.reap()
    assert (report.deleted, report.unknown, report.failed) == (2, 0, 0)
    assert (await stack.sandbox.summary())["customers"] == 1
    assert (await reload(stack, gone.id)).billing_key_deleted_at == stack.clock.now()
    assert (await reload(stack, kept.id)).billing_key_deleted_at is None
    assert (await reaper.reap()).deleted == 0  # once
    refused = await pg.charge_billing_key(
        ChargeRequest(str(gone.billing_key_ref), new_order_id(), 1_000, "x")
    )
    assert refused.status is ChargeStatus.failed
    async with stack.db.sessions() as s:
        rows = list(await s.scalars(select(AuditLog).where(AuditLog.actor == ACTOR)))
    assert sorted(r.object_id for r in rows) == sorted([gone.id, other.id])


async def test_a_payment_under_way_keeps_the_key(stack: Stack) -> None:
    card = await registered(stack, "4111111111111111")
    intent = await stack.runtime.deps.payments.create_intent(
        stack.merchant_id, card.id, amount=9_900, order_name="x"
    )
    await stack.runtime.deps.cards.delete(stack.merchant_id, card.id, actor="t", why="test")
    stack.clock.advance(AFTER * 2)
    reaper = BillingKeyReaper(stack.db, stack.runtime.gateway, stack.clock, after=AFTER)
    for status in ("created", "processing", "retry_scheduled"):
        async with stack.db.transaction() as s:
            await s.execute(
                update(PaymentIntent).where(PaymentIntent.id == intent.id).values(status=status)
            )
        assert (await reaper.reap()).deleted == 0, status
    async with stack.db.transaction() as s:
        await s.execute(
            update(PaymentIntent).where(PaymentIntent.id == intent.id).values(status="succeeded")
        )
    assert (await reaper.reap()).deleted == 1


async def test_the_engines_sweeper_reaps(stack: Stack) -> None:
    card = await registered(stack, "4111111111111111")
    await stack.runtime.deps.cards.delete(stack.merchant_id, card.id, actor="t", why="test")
    stack.clock.advance(AFTER * 2)
    engine = stack.runtime.engine(ari=False, agi=False, sweep_interval_s=0.02)
    task = asyncio.create_task(engine._sweeper())
    try:
        for _ in range(250):
            if (await reload(stack, card.id)).billing_key_deleted_at is not None:
                break
            await asyncio.sleep(0.02)
        assert (await reload(stack, card.id)).billing_key_deleted_at is not None
    finally:
        task.cancel()
    assert (await stack.sandbox.summary())["customers"] == 0
