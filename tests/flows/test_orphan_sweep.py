"""Vault records no card refers to (a call that died between tokenize and attach, a PG
that failed the billing-key call, a deleted card whose erase failed) are erased: at
once where the flow can, by the orphan sweep otherwise. Real store, vault and sandbox
PG (the flow-test stack)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from ivr.cards.sweep import ACTOR, OrphanSweep, StaleToken, billing_key_uid, check_attachable
from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.gateways.errors import GatewayUnavailable
from ivr.gateways.fake import FakeGateway, Outcome
from ivr.gateways.vault_forwarding import VaultCardGateway
from ivr.store.tables import AuditLog, BillingKeyRequest, Card
from ivr.telephony.fake import Press
from tests.vault.vault_helpers import random_card
from vault.service import LocalVault

from .conftest import Stack
from .test_flow_registration import card_keys, cards

pytestmark = pytest.mark.anyio

GRACE = timedelta(minutes=60)


def local_vault(stack: Stack) -> LocalVault:
    vault = stack.runtime.vault
    assert isinstance(vault, LocalVault)
    return vault


async def records(stack: Stack) -> set[str]:
    past = stack.clock.now() + timedelta(days=1)
    return {r.token for r in await stack.runtime.vault.tokens(created_before=past)}


def down_gateway() -> VaultCardGateway:
    """The PG connection fails on the billing-key call (after the card was stored)."""
    return VaultCardGateway(
        FakeGateway().always("register_billing_key", ConnectionError("PG unreachable"))
    )


async def test_a_failed_billing_key_call_erases_the_stored_card_at_once(stack: Stack) -> None:
    vault = local_vault(stack)
    vault.gateway = down_gateway()
    req = await stack.request(CallRequestKind.registration)
    outcome, call = await stack.call([Press("1"), *card_keys()])
    assert outcome == "error"
    assert call.played[-1] == "arspay/err.system"
    assert await cards(stack) == []
    assert await records(stack) == set()  # not left for the sweep: erased by the flow
    [erase] = [e for e in await vault.audit(limit=10) if e.action == "delete"]
    assert erase.why == "billing key not issued"
    assert (await stack.reload(req.id)).status == CallRequestStatus.sms_sent.value


async def test_a_pg_that_did_not_answer_fails_the_call_and_keeps_the_key_noted(
    stack: Stack,
) -> None:
    """``pg_down`` (the PG unreachable for the billing key) is still a system error: the
    record is erased, and the key the PG may have issued stays noted for its sweep."""
    vault = local_vault(stack)
    down = GatewayUnavailable("PG unreachable", retry_safe=True)
    vault.gateway = VaultCardGateway(FakeGateway().always("register_billing_key", down))
    await stack.request(CallRequestKind.registration)
    outcome, call = await stack.call([Press("1"), *card_keys()])
    assert outcome == "error"
    assert call.played[-1] == "arspay/err.system"
    assert await cards(stack) == []
    assert await records(stack) == set()
    async with stack.db.sessions() as s:
        [noted] = list(await s.scalars(select(BillingKeyRequest)))
    assert noted.status == "pending"  # not "declined": a key may exist at the PG


async def test_the_sweep_erases_records_no_card_needs_and_only_those(stack: Stack) -> None:
    vault = stack.runtime.vault
    mid = stack.merchant_id
    # a registered card (kept), then its row deleted by hand as if the erase had failed
    await stack.request(CallRequestKind.registration)
    assert (await stack.call([Press("1"), *card_keys()]))[0] == "completed"
    await stack.request(CallRequestKind.registration)
    assert (await stack.call([Press("1"), *card_keys("5555555555554444")]))[0] == "completed"
    kept, deleted = sorted(await cards(stack), key=lambda c: c.last4)
    async with stack.db.transaction() as s:
        await s.execute(update(Card).where(Card.id == deleted.id).values(status="deleted"))
    # a call killed between tokenize and attach, and one of another engine's merchants
    orphan = await vault.tokenize(mid, random_card(1), who="flow:registration")
    foreign = await vault.tokenize("mer_of_another_engine", random_card(2), who="t")
    stack.clock.advance(GRACE + timedelta(minutes=1))
    fresh = await vault.tokenize(mid, random_card(3), who="flow:registration")  # mid-call

    sweep = OrphanSweep(stack.db, vault, stack.clock, grace=GRACE, page=2)  # several pages
    dry = await sweep.sweep(dry_run=True)
    assert (dry.checked, dry.orphans, dry.erased, dry.foreign) == (4, 2, 0, 1)
    assert len(await records(stack)) == 5

    report = await sweep.sweep()
    assert (report.orphans, report.erased, report.failed) == (2, 2, 0)
    left = await records(stack)
    assert left == {kept.vault_token, foreign.token, fresh.token}
    assert orphan.token not in left
    assert deleted.vault_token not in left
    async with stack.db.sessions() as s:
        rows = list(await s.scalars(select(AuditLog).where(AuditLog.actor == ACTOR)))
    assert {(r.action, r.object_id) for r in rows} == {
        ("vault.orphan_erased", orphan.token),
        ("vault.orphan_erased", deleted.vault_token),
    }
    erases = [e for e in await vault.audit(limit=50) if e.who == ACTOR]
    assert {e.token for e in erases} == {orphan.token, deleted.vault_token}
    assert (await sweep.sweep()).orphans == 0  # nothing left to do
    # the kept card still charges: its record is there
    assert (await vault.metadata(kept.vault_token, mid)).last4 == kept.last4


async def test_the_billing_key_a_dead_call_left_at_the_pg_goes_first(stack: Stack) -> None:
    vault, mid = stack.runtime.vault, stack.merchant_id
    await stack.request(CallRequestKind.registration)
    assert (await stack.call([Press("1"), *card_keys()]))[0] == "completed"
    [card] = await cards(stack)
    assert card.billing_key_ref == billing_key_uid(card.vault_token)  # derived, one-way
    assert card.vault_token[4:] not in str(card.billing_key_ref)
    # the engine died after the PG issued the key, before the card was attached
    meta = await vault.tokenize(mid, random_card(6), who="flow:registration")
    key = await vault.issue_billing_key(
        meta.token, mid, password2="12", customer_uid=billing_key_uid(meta.token),
        who="flow:registration", why="registration",
    )  # fmt: skip
    assert key.ok
    assert (await stack.sandbox.summary())["customers"] == 2
    stack.clock.advance(GRACE * 2)

    down_pg = FakeGateway().always("delete_billing_key", Outcome.unavailable)
    down = OrphanSweep(stack.db, vault, stack.clock, grace=GRACE, gateway=down_pg)
    report = await down.sweep()
    assert (report.orphans, report.erased, report.failed) == (1, 0, 1)
    assert meta.token in await records(stack)  # kept until its key is gone

    sweep = OrphanSweep(stack.db, vault, stack.clock, grace=GRACE, gateway=stack.runtime.gateway)
    report = await sweep.sweep()
    assert (report.erased, report.keys_deleted, report.failed) == (1, 1, 0)
    assert (await stack.sandbox.summary())["customers"] == 1  # the registered card's
    assert await records(stack) == {card.vault_token}


async def test_the_engine_sweeps_in_the_background(stack: Stack) -> None:
    orphan = await stack.runtime.vault.tokenize(stack.merchant_id, random_card(4), who="t")
    stack.clock.advance(GRACE * 2)
    assert "orphan-sweep" in stack.runtime.engine(ari=False, agi=False).workers
    task = asyncio.create_task(stack.runtime.orphan_sweep())
    try:
        for _ in range(200):
            if orphan.token not in await records(stack):
                break
            await asyncio.sleep(0.02)
        assert orphan.token not in await records(stack)
    finally:
        task.cancel()


async def test_a_token_older_than_half_the_grace_is_not_attached(stack: Stack) -> None:
    meta = await stack.runtime.vault.tokenize(stack.merchant_id, random_card(5), who="t")
    check_attachable(meta, stack.clock.now() + GRACE / 2, GRACE)
    with pytest.raises(StaleToken):
        check_attachable(meta, stack.clock.now() + GRACE / 2 + timedelta(seconds=1), GRACE)


async def test_a_grace_under_ten_minutes_is_refused(stack: Stack) -> None:
    with pytest.raises(ValueError, match="10 minutes"):
        OrphanSweep(stack.db, stack.runtime.vault, stack.clock, grace=timedelta(minutes=9))
