"""Card migration between PG accounts: each card once, resumable, audited."""

from __future__ import annotations

import asyncio
import contextlib
import gc

import pytest
from sqlalchemy import select

from ivr.cards.sweep import billing_key_uid
from ivr.clock import FakeClock
from ivr.domain.ids import new_id
from ivr.gateways.errors import GatewayUnavailable
from ivr.pg_accounts.migration import Progress
from ivr.pg_accounts.worker import drive
from ivr.store.db import Database
from ivr.store.tables import (
    AuditLog,
    BillingKeyRequest,
    CardMigration,
    CardMigrationBatch,
    PaymentAttempt,
    PaymentIntent,
)
from tests.pg_accounts.migration_support import LEASE, add_cards, world
from vault.forwarding import BillingKeyResult

pytestmark = pytest.mark.anyio

B = "acct-b"


class Killed(BaseException):
    """The runner's process dies here (not an error the runner handles)."""


async def statuses(db: Database, batch_id: str) -> dict[str, str]:
    async with db.sessions() as s:
        rows = await s.scalars(select(CardMigration).where(CardMigration.batch_id == batch_id))
        return {m.card_id: m.status for m in rows}


async def actions(db: Database, action: str) -> list[AuditLog]:
    async with db.sessions() as s:
        return list((await s.scalars(select(AuditLog).where(AuditLog.action == action))).all())


def test_the_default_account_keeps_its_key_names() -> None:
    assert billing_key_uid("tok") == billing_key_uid("tok", "default")
    assert billing_key_uid("tok", B) not in (billing_key_uid("tok"), billing_key_uid("tok", "c"))
    assert billing_key_uid("tok", B) == billing_key_uid("tok", B)


async def test_cards_move_with_their_keys_and_old_keys_go(db: Database, clock: FakeClock) -> None:
    w = await world(db, clock, 3)
    [at_b] = await add_cards(db, clock, w.merchant, 1, account=B)
    [deleted] = await add_cards(db, clock, w.merchant, 1, status="deleted")
    seen: list[Progress] = []
    batch, final = await w.migrator(concurrency=2).migrate(
        w.merchant, B, actor="ops", progress=seen.append
    )
    assert final == Progress(total=3, done=3, failed=0, needs_payer=0, open=0)
    assert batch.status == "finished"
    assert batch.counts == {"done": 3}
    assert seen[-1].done == 3
    assert seen[0].done == 0
    assert set(await statuses(db, batch.id)) == set(w.cards)  # not at_b, not deleted
    for card_id in w.cards:
        card = await w.card(card_id)
        assert card.pg_account_id == B
        assert card.billing_key_ref == billing_key_uid(card.vault_token, B)
    assert (await w.card(at_b)).billing_key_ref == f"old_{at_b}"
    assert (await w.card(deleted)).pg_account_id is None
    assert {c["password2"] for c in w.vault.calls} == {""}
    assert {c["why"] for c in w.vault.calls} == {"card migration"}
    deleted_old = [c.ref for c in w.book.gateway(None).calls if c.op == "delete_billing_key"]
    assert sorted(deleted_old) == sorted(f"old_{c}" for c in w.cards)
    async with db.sessions() as s:
        keys = (await s.scalars(select(BillingKeyRequest))).all()
    assert {(k.status, k.pg_account_id) for k in keys} == {("attached", B)}
    assert len(await actions(db, "card.migrate")) == 3
    assert len(await actions(db, "card_migration.finish")) == 1


async def test_declines_end_the_card_and_the_password_asks_for_the_payer(
    db: Database, clock: FakeClock
) -> None:
    w = await world(db, clock, 3)
    needs, bad, _ = w.cards
    w.vault.script[f"tok_{needs}"] = [
        BillingKeyResult(False, "x", decline_code="password_required")
    ]
    w.vault.script[f"tok_{bad}"] = [BillingKeyResult(False, "x", decline_code="lost_or_stolen")]
    batch, final = await w.migrator().migrate(w.merchant, B, actor="ops")
    assert (final.done, final.failed, final.needs_payer) == (1, 1, 1)
    async with db.sessions() as s:
        rows = {m.card_id: m for m in (await s.scalars(select(CardMigration))).all()}
    assert (rows[needs].status, rows[needs].error_code) == ("needs_payer", "password_required")
    assert (rows[bad].status, rows[bad].error_code) == ("failed", "lost_or_stolen")
    assert (await w.card(needs)).billing_key_ref == f"old_{needs}"  # still charges at A
    assert (await w.card(needs)).pg_account_id is None
    # a later batch takes them again (the payer may have called meanwhile)
    again = await w.migrator().start(w.merchant, B, actor="ops")
    assert again.id != batch.id
    assert again.total == 2


async def test_a_pg_down_leaves_cards_pending_for_the_next_pass(
    db: Database, clock: FakeClock
) -> None:
    w = await world(db, clock, 2)
    first = w.cards[0]
    w.vault.script[f"tok_{first}"] = [GatewayUnavailable("down", retry_safe=True)]
    batch, final = await w.migrator().migrate(w.merchant, B, actor="ops")
    assert (final.done, final.open) == (1, 1)
    assert batch.status == "running"
    # within the lease the card is held: a second run now does nothing
    assert (await w.migrator().run(batch.id)).open == 1
    clock.advance(LEASE)
    again, final = await w.migrator().migrate(w.merchant, B, actor="ops")
    assert again.id == batch.id  # resumed, not a new batch
    assert final.done == 2
    assert again.status == "finished"
    assert len(await actions(db, "card_migration.resume")) == 1


async def test_a_card_with_an_open_charge_waits_issued(db: Database, clock: FakeClock) -> None:
    w = await world(db, clock, 1)
    [card_id] = w.cards
    card = await w.card(card_id)
    now = clock.now()
    async with db.transaction() as s:
        pi = PaymentIntent(id=new_id("pi"), merchant_id=w.merchant, customer_id=card.customer_id,
                           card_id=card_id, source="api", order_name="x", amount=1000,
                           status="processing", created_at=now, updated_at=now)  # fmt: skip
        s.add(pi)
        await s.flush()
        attempt = PaymentAttempt(id=new_id("pa"), intent_id=pi.id, order_id="ord1", amount=1000,
                                 status="unknown", created_at=now)  # fmt: skip
        s.add(attempt)
    batch, _final = await w.migrator().migrate(w.merchant, B, actor="ops")
    assert await statuses(db, batch.id) == {card_id: "issued"}
    assert (await w.card(card_id)).pg_account_id is None
    async with db.transaction() as s:
        row = await s.get(PaymentAttempt, attempt.id)
        assert row is not None
        row.status = "succeeded"
    clock.advance(LEASE)
    assert (await w.migrator().run(batch.id)).done == 1
    assert len(w.vault.calls) == 1  # issued once, switched on the second pass


async def test_old_key_delete_failing_stays_switched(db: Database, clock: FakeClock) -> None:
    w = await world(db, clock, 1)
    w.book.gateway(None).script("delete_billing_key", GatewayUnavailable("x", retry_safe=True))
    batch, _ = await w.migrator().migrate(w.merchant, B, actor="ops")
    assert list((await statuses(db, batch.id)).values()) == ["switched"]
    assert (await w.card(w.cards[0])).pg_account_id == B  # charges at B already
    clock.advance(LEASE)
    assert (await w.migrator().run(batch.id)).done == 1
    assert w.book.gateway(None).count("delete_billing_key") == 2


@pytest.mark.parametrize("step", ["issue", "lost_answer", "switch", "delete"])
async def test_a_runner_killed_at_any_step_is_resumed(
    db: Database,
    clock: FakeClock,
    step: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = await world(db, clock, 2)
    victim = w.cards[0]
    token = f"tok_{victim}"
    migrator = w.migrator()
    if step == "issue":
        w.vault.script[token] = [Killed()]
    elif step == "lost_answer":
        w.vault.crash_after_issue.add(token)
    elif step == "delete":
        w.book.gateway(None).script("delete_billing_key", Killed())
    else:
        real = migrator.store.switch_many

        async def dying(cs, *, actor):  # type: ignore[no-untyped-def]
            if any(c.card_id == victim for c in cs):
                raise Killed()
            return await real(cs, actor=actor)

        monkeypatch.setattr(migrator.store, "switch_many", dying)
    batch = await migrator.start(w.merchant, B, actor="ops")
    with contextlib.suppress(Killed):  # the process died; the other card may have moved
        await migrator.run(batch.id)
    monkeypatch.undo()
    clock.advance(LEASE)
    final = await w.migrator().run(batch.id)
    assert final.done == 2
    assert final.open == 0
    card = await w.card(victim)
    assert card.billing_key_ref == billing_key_uid(token, B)
    assert card.pg_account_id == B
    assert len(await actions(db, "card.migrate")) == 2  # switched once each
    assert set(w.vault.issued) == {billing_key_uid(f"tok_{c}", B) for c in w.cards}
    gc.collect()  # the dead run's tasks are finalised now: each error was retrieved
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_two_runners_at_once_move_each_card_once(db: Database, clock: FakeClock) -> None:
    w = await world(db, clock, 12)
    w.vault.pause = 0.001
    batch = await w.migrator().start(w.merchant, B, actor="ops")
    one, two = await asyncio.gather(
        w.migrator(concurrency=3).run(batch.id), w.migrator(concurrency=3).run(batch.id)
    )
    assert two.done == one.done == 12 or max(one.done, two.done) == 12
    assert len(w.vault.calls) == 12  # issued once each
    assert sorted(w.vault.issued) == sorted(set(w.vault.issued))
    assert len(await actions(db, "card.migrate")) == 12
    assert w.book.gateway(None).count("delete_billing_key") == 12


async def test_two_planners_make_one_batch(db: Database, clock: FakeClock) -> None:
    w = await world(db, clock, 5)
    a, b = await asyncio.gather(
        w.migrator().start(w.merchant, B, actor="x"), w.migrator().start(w.merchant, B, actor="y")
    )
    assert a.id == b.id
    async with db.sessions() as s:
        assert len((await s.scalars(select(CardMigrationBatch))).all()) == 1
        assert len((await s.scalars(select(CardMigration))).all()) == 5
    # a card registered meanwhile joins the running batch
    await add_cards(db, clock, w.merchant, 1)
    assert (await w.migrator().start(w.merchant, B, actor="x")).total == 6
    assert await w.migrator().preview(w.merchant, B) == 0


async def test_a_card_deleted_before_its_switch_fails_and_its_new_key_goes(
    db: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = await world(db, clock, 1)
    [card_id] = w.cards
    migrator = w.migrator()
    real = migrator.store.issued_many

    async def then_deleted(items):  # type: ignore[no-untyped-def]
        ok = await real(items)
        async with db.transaction() as s:
            card = await s.get(type(await w.card(card_id)), card_id)
            assert card is not None
            card.status = "deleted"
        return ok

    monkeypatch.setattr(migrator.store, "issued_many", then_deleted)
    batch, final = await migrator.migrate(w.merchant, B, actor="ops")
    assert final.failed == 1
    assert batch.status == "finished"
    async with db.sessions() as s:
        row = (await s.scalars(select(CardMigration))).one()
    assert (row.status, row.error_code) == ("failed", "card_deleted")
    assert [c.op for c in w.book.gateway(B).calls] == ["delete_billing_key"]
    assert (await w.card(card_id)).billing_key_ref == f"old_{card_id}"


async def test_a_card_moves_away_and_back_again(db: Database, clock: FakeClock) -> None:
    w = await world(db, clock, 1)
    [card_id] = w.cards
    for target in (B, "default", B):
        _, final = await w.migrator().migrate(w.merchant, target, actor="ops")
        assert final.done == 1
    card = await w.card(card_id)
    assert card.billing_key_ref == billing_key_uid(card.vault_token, B)
    assert card.pg_account_id == B
    async with db.sessions() as s:
        keys = {k.customer_uid: k.status for k in (await s.scalars(select(BillingKeyRequest)))}
    assert keys[card.billing_key_ref] == "attached"
    # the keys it left behind were deleted where they were: A's twice, B's once
    assert w.book.gateway(None).count("delete_billing_key") == 2
    assert w.book.gateway(B).count("delete_billing_key") == 1


async def test_the_engine_worker_drives_running_batches(db: Database, clock: FakeClock) -> None:
    w = await world(db, clock, 2)
    w.vault.script[f"tok_{w.cards[0]}"] = [GatewayUnavailable("down", retry_safe=True)]
    migrator = w.migrator()
    batch = await migrator.start(w.merchant, B, actor="api:key_1")  # as POST does
    worker = asyncio.create_task(drive(migrator, clock, interval_s=15.0))
    try:
        for _ in range(2000):  # its passes: the PG-down card waits out its lease
            if (await migrator.store.batch(batch.id)).status == "finished":
                break
            await asyncio.sleep(0)
        view = await migrator.store.batch(batch.id)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    assert view.status == "finished"
    assert view.counts == {"done": 2}
    assert await migrator.store.running() == []
