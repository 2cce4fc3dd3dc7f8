"""A billing key the PG issued for a registration that then failed is deleted at the PG
(issue #25): the key's customer_uid is noted before the PG is asked, so it stays named
after the flow erased the vault record. Real flows, store, vault and sandbox PG; the
sandbox loses the billing-key answer on purpose."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from ivr.cards.key_requests import ACTOR
from ivr.domain.states import CallRequestKind
from ivr.store.tables import AuditLog, BillingKeyRequest
from ivr.telephony.fake import Press

from .conftest import Stack
from .test_flow_registration import card_keys, cards

pytestmark = pytest.mark.anyio

SETTLE = timedelta(seconds=121)  # gateway.settle_s (120 s) has passed
GRACE = timedelta(minutes=61)  # vault.orphan_grace_minutes (60) has passed


async def requests(stack: Stack) -> list[BillingKeyRequest]:
    async with stack.db.sessions() as s:
        return list(await s.scalars(select(BillingKeyRequest)))


async def at_pg(stack: Stack, uid: str) -> bool:
    await stack.sandbox.settled()
    return await stack.sandbox.state.ledger.customer(uid) is not None


async def sweep(stack: Stack) -> int:
    return await stack.runtime.deps.key_requests.sweep()


@pytest.mark.parametrize("ordering", ["record_then_drop", "error_after"])
async def test_a_key_issued_for_a_failed_registration_is_deleted_at_the_pg(
    stack: Stack, ordering: str
) -> None:
    """The PG issues the key, its answer is lost; the call ends in error and erases the
    card from the vault. Before this rule the key stayed at the PG for good."""
    await stack.sandbox.fault("billing_key", ordering)
    await stack.request(CallRequestKind.registration)
    outcome, call = await stack.call([Press("1"), *card_keys()])
    assert outcome == "error"
    assert call.played[-1] == "arspay/err.system"
    assert await cards(stack) == []
    [row] = await requests(stack)
    assert row.status == "pending"
    assert await at_pg(stack, row.customer_uid)  # issued at the PG, nothing refers to it
    assert await sweep(stack) == 0  # a request for it might still be on its way
    stack.clock.advance(SETTLE)
    assert await sweep(stack) == 1
    assert not await at_pg(stack, row.customer_uid)
    [row] = await requests(stack)
    assert row.status == "deleted"
    async with stack.db.sessions() as s:
        [audit] = list(await s.scalars(select(AuditLog).where(AuditLog.actor == ACTOR)))
    assert (audit.action, audit.object_id) == ("billing_key.delete", row.customer_uid)
    assert audit.details["known_to_pg"] is True


async def test_a_key_the_pg_never_issued_is_deleted_as_unknown(stack: Stack) -> None:
    await stack.sandbox.fault("billing_key", "drop_before_record")
    await stack.request(CallRequestKind.registration)
    assert (await stack.call([Press("1"), *card_keys()]))[0] == "error"
    [row] = await requests(stack)
    assert not await at_pg(stack, row.customer_uid)
    stack.clock.advance(SETTLE)
    assert await sweep(stack) == 1
    [row] = await requests(stack)
    assert row.status == "deleted"


async def test_a_key_of_a_registered_card_is_kept(stack: Stack) -> None:
    await stack.request(CallRequestKind.registration)
    assert (await stack.call([Press("1"), *card_keys()]))[0] == "completed"
    [card] = await cards(stack)
    [row] = await requests(stack)
    assert (row.status, row.customer_uid) == ("attached", card.billing_key_ref)
    stack.clock.advance(GRACE * 24)
    assert await sweep(stack) == 0
    assert await at_pg(stack, row.customer_uid)


async def test_a_declined_card_has_no_key_to_delete(stack: Stack) -> None:
    await stack.request(CallRequestKind.registration)
    keys = [Press("1"), *card_keys(password="00"), Press("2")]  # INVALID_PASSWORD, then end
    assert (await stack.call(keys))[0] == "card_declined"
    [row] = await requests(stack)
    assert row.status == "declined"
    stack.clock.advance(GRACE)
    assert await sweep(stack) == 0


async def test_a_key_issued_to_a_call_that_died_before_attaching_goes_after_the_grace(
    stack: Stack,
) -> None:
    """The PG answered; the engine died before attaching the card (the orphan sweep
    erases its vault record, this sweep its key)."""
    await stack.request(CallRequestKind.registration)
    assert (await stack.call([Press("1"), *card_keys()]))[0] == "completed"
    [card] = await cards(stack)
    async with stack.db.transaction() as s:  # as if the card row had never been written
        await s.execute(update(BillingKeyRequest).values(status="issued"))
        await s.delete(await s.get(type(card), card.id))
    stack.clock.advance(SETTLE)
    assert await sweep(stack) == 0  # the call may still attach it
    stack.clock.advance(GRACE)
    assert await sweep(stack) == 1
    assert not await at_pg(stack, card.billing_key_ref or "")


async def test_a_pg_that_fails_the_delete_leaves_the_key_for_the_next_sweep(
    stack: Stack,
) -> None:
    await stack.sandbox.fault("billing_key", "record_then_drop")
    await stack.request(CallRequestKind.registration)
    assert (await stack.call([Press("1"), *card_keys()]))[0] == "error"
    [row] = await requests(stack)
    stack.clock.advance(SETTLE)
    sandbox_url = stack.runtime.gateway.gateway._base  # type: ignore[attr-defined]
    stack.runtime.gateway.gateway._base = "http://127.0.0.1:9"  # type: ignore[attr-defined]
    try:
        assert await sweep(stack) == 0
    finally:
        stack.runtime.gateway.gateway._base = sandbox_url  # type: ignore[attr-defined]
    [row] = await requests(stack)
    assert row.status == "pending"
    assert await sweep(stack) == 1
    assert not await at_pg(stack, row.customer_uid)
