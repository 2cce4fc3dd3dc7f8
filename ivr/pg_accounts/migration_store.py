"""The database side of card migrations (:mod:`ivr.pg_accounts.migration`): batches,
claims, and each card's steps, every one its own committed transaction.

Exactly once per card rests on three things here:

* at most one open (``pending``/``issued``/``switched``) migration per card — the
  partial unique index ``uq_card_migrations_open_card`` — and the batch of a merchant and
  target account planned under the merchant row's lock, so two planners make one batch;
* a **claim** before a runner works on a card: ``updated_at`` is also the claim's time,
  and a runner takes only rows whose ``updated_at`` is at least ``lease`` old (``FOR
  UPDATE SKIP LOCKED`` on PostgreSQL), setting it to now; a new row is written already
  free (``updated_at`` = its creation minus the lease). Two runners of one batch thus work
  on different cards, and a runner killed mid-card leaves it to the next run once the
  lease is over;
* every step is a compare-and-set on the row's status under its lock
  (:func:`~ivr.store.db.locked_in`), so a late runner whose lease ran out cannot move a
  card twice: its step finds the status moved on and stops.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.audit import audit
from ivr.cards.sweep import billing_key_uid
from ivr.clock import Clock
from ivr.domain.ids import new_id
from ivr.domain.states import (
    CARD_MIGRATION,
    OPEN_MIGRATION,
    BillingKeyRequestStatus,
    CardMigrationStatus,
)
from ivr.pg_accounts.model import DEFAULT, account_key, stored_id
from ivr.store.core import table
from ivr.store.db import Database, locked_in
from ivr.store.scope import Scope
from ivr.store.tables import (
    BillingKeyRequest,
    Card,
    CardMigration,
    CardMigrationBatch,
    Merchant,
    PaymentAttempt,
    PaymentIntent,
)

M = CardMigrationStatus
KR = BillingKeyRequestStatus
OPEN_ATTEMPT = ("pending", "unknown")  # a charge the card's old key may still be part of
Switch = Literal["switched", "busy", "card_deleted", "card_changed", "moved"]


@dataclass(frozen=True)
class Claimed:
    """A card a runner now works on (its lease)."""

    id: str
    merchant_id: str
    card_id: str
    token: str
    status: M
    from_account: str | None  # stored form: None is default
    to_account: str  # account key ("default" for the [gateway] settings)
    old_ref: str | None
    new_ref: str | None
    uid: str  # the customer_uid asked at the target (new_ref once issued, on v1)


@dataclass(frozen=True)
class BatchView:
    id: str
    merchant_id: str
    to_account: str
    status: str
    total: int
    counts: dict[str, int]
    created_at: datetime
    finished_at: datetime | None

    def shown(self) -> dict[str, Any]:
        return {"id": self.id, "merchant_id": self.merchant_id, "to_account": self.to_account,
                "status": self.status, "total": self.total, "counts": dict(self.counts),
                "created_at": self.created_at, "finished_at": self.finished_at}  # fmt: skip


def _not_at(to_account: str) -> Any:
    if to_account == DEFAULT:
        return Card.pg_account_id.is_not(None)
    return or_(Card.pg_account_id.is_(None), Card.pg_account_id != to_account)


class MigrationStore:
    def __init__(self, db: Database, clock: Clock, *, lease: timedelta) -> None:
        self.db, self.clock, self.lease = db, clock, lease

    # ------------------------------------------------------------------ batches

    def _eligible(self, merchant_id: str, to_account: str, batch_id: str | None) -> Any:
        """Active cards with a key, not at the target, with no open migration (and none
        in this batch already: a card that failed here waits for a new batch)."""
        scope = Scope.of(merchant_id)
        open_ = scope.where(
            select(CardMigration.card_id).where(CardMigration.status.in_(OPEN_MIGRATION)),
            CardMigration,
        )
        q = select(Card.id, Card.vault_token, Card.billing_key_ref, Card.pg_account_id).where(
            Card.status == "active",
            Card.billing_key_ref.is_not(None),
            _not_at(to_account),
            Card.id.not_in(open_),
        )
        inner = [open_]
        if batch_id is not None:
            here = scope.where(
                select(CardMigration.card_id).where(CardMigration.batch_id == batch_id),
                CardMigration,
            )
            q = q.where(Card.id.not_in(here))
            inner.append(here)
        return scope.nest(scope.where(q, Card), *inner).order_by(Card.id)

    async def preview(self, merchant_id: str, to_account: str) -> int:
        """How many cards a new batch would take now (``--dry-run``)."""
        async with self.db.sessions() as s:
            batch = await self._running(s, merchant_id, to_account)
            rows = (await s.execute(self._eligible(merchant_id, to_account,
                                                   batch.id if batch else None))).all()  # fmt: skip
        return len(rows)

    async def _running(
        self, s: AsyncSession, merchant_id: str, to_account: str
    ) -> CardMigrationBatch | None:
        query = select(CardMigrationBatch).where(
            CardMigrationBatch.to_account_id == to_account,
            CardMigrationBatch.status == "running",
        )
        found: CardMigrationBatch | None = await s.scalar(
            Scope.of(merchant_id).where(query, CardMigrationBatch).limit(1)
        )
        return found

    async def plan(self, merchant_id: str, to_account: str, *, actor: str) -> tuple[str, bool]:
        """The running batch of (merchant, target), topped up with the cards that became
        eligible since, or a new one; returns (batch id, resumed)."""
        to_account = account_key(to_account)
        now = self.clock.now()
        free = now - self.lease  # written already free to claim
        async with self.db.transaction() as s:
            # (planners of one merchant serialized on its row)
            await Scope.of(merchant_id).one(s, Merchant, merchant_id, "merchant", lock=True)
            batch = await self._running(s, merchant_id, to_account)
            resumed = batch is not None
            if batch is None:
                batch = CardMigrationBatch(id=new_id("cmb"), merchant_id=merchant_id,
                                           to_account_id=to_account, status="running",
                                           actor=actor, total=0, created_at=now,
                                           updated_at=now)  # fmt: skip
                s.add(batch)
                await s.flush()
            rows = (await s.execute(self._eligible(merchant_id, to_account, batch.id))).all()
            for card_id, token, old_ref, from_account in rows:
                s.add(CardMigration(id=new_id("cmg"), batch_id=batch.id, merchant_id=merchant_id,
                                    card_id=card_id, from_account_id=from_account,
                                    to_account_id=to_account, old_ref=old_ref,
                                    new_ref=billing_key_uid(token, to_account),
                                    status=M.pending.value, created_at=now,
                                    updated_at=free))  # fmt: skip
            batch.total += len(rows)
            batch.updated_at = now
            audit(s, self.clock, actor=actor,
                  action="card_migration.resume" if resumed else "card_migration.start",
                  object_type="card_migration_batch", object_id=batch.id,
                  merchant_id=merchant_id,
                  details={"to_account": to_account, "added": len(rows)})  # fmt: skip
            return batch.id, resumed

    async def running(self) -> list[str]:
        """Every running batch, oldest first (the engine's worker drives them)."""
        return await self.db.all(
            select(CardMigrationBatch.id)
            .where(CardMigrationBatch.status == "running")
            .order_by(CardMigrationBatch.created_at)
        )

    async def batch(self, batch_id: str, merchant_id: str | None = None) -> BatchView:
        scope = Scope(merchant_id)
        async with self.db.sessions() as s:
            b = await scope.one(s, CardMigrationBatch, batch_id, "card migration")
            counts = await self._counts(s, [batch_id], scope)
        return _view(b, counts.get(batch_id, {}))

    async def batches(self, merchant_id: str | None = None, limit: int = 50) -> list[BatchView]:
        scope = Scope(merchant_id)
        async with self.db.sessions() as s:
            q = scope.select(CardMigrationBatch).order_by(CardMigrationBatch.created_at.desc())
            found = (await s.scalars(q.limit(limit))).all()
            counts = await self._counts(s, [b.id for b in found], scope)
        return [_view(b, counts.get(b.id, {})) for b in found]

    async def _counts(
        self, s: AsyncSession, ids: list[str], scope: Scope | None = None
    ) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {i: {} for i in ids}
        if not ids:
            return out
        query = (
            select(CardMigration.batch_id, CardMigration.status, func.count())
            .where(CardMigration.batch_id.in_(ids))
            .group_by(CardMigration.batch_id, CardMigration.status)
        )
        rows = await s.execute((scope or Scope.everyone()).where(query, CardMigration))
        for batch_id, status, n in rows:
            out[batch_id][status] = n
        return out

    async def counts(self, batch_id: str) -> Counter[str]:
        async with self.db.sessions() as s:
            return Counter((await self._counts(s, [batch_id]))[batch_id])

    async def finish_if_done(self, batch_id: str, *, actor: str) -> bool:
        """The batch is finished once none of its cards is open."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            b = await locked_in(s, CardMigrationBatch, batch_id, "running")
            if b is None:
                return False
            still = await s.scalar(
                select(CardMigration.id)
                .where(CardMigration.batch_id == batch_id,
                       CardMigration.status.in_(OPEN_MIGRATION))
                .limit(1)
            )  # fmt: skip
            if still is not None:
                return False
            counts = (await self._counts(s, [batch_id]))[batch_id]
            b.status, b.finished_at, b.updated_at = "finished", now, now
            audit(s, self.clock, actor=actor, action="card_migration.finish",
                  object_type="card_migration_batch", object_id=batch_id,
                  merchant_id=b.merchant_id, details={"counts": counts})  # fmt: skip
        return True

    # ------------------------------------------------------------------ claims

    async def claim(self, batch_id: str, *, limit: int) -> list[Claimed]:
        """Up to ``limit`` open cards of the batch no runner holds, now held by the
        caller for ``lease``; the longest untouched first."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            ids = list(
                (
                    await s.scalars(
                        select(CardMigration.id)
                        .where(
                            CardMigration.batch_id == batch_id,
                            CardMigration.status.in_(OPEN_MIGRATION),
                            CardMigration.updated_at <= now - self.lease,
                        )
                        .order_by(CardMigration.updated_at, CardMigration.id)
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            )
            if not ids:
                return []
            await s.execute(
                update(CardMigration).where(CardMigration.id.in_(ids)).values(updated_at=now)
            )
            rows = (
                await s.execute(
                    select(CardMigration, Card.vault_token)
                    .join(Card, Card.id == CardMigration.card_id)
                    .where(CardMigration.id.in_(ids))
                )
            ).all()
            out = [_claimed(m, token) for m, token in rows]
            await self._note_keys(s, [c for c in out if c.status is M.pending], now)
        return sorted(out, key=lambda c: c.id)

    async def _note_keys(self, s: AsyncSession, pending: list[Claimed], now: datetime) -> None:
        """The keys about to be asked, named (fresh) before the PG is asked."""
        if not pending:
            return
        known = dict((await s.execute(
            select(BillingKeyRequest.customer_uid, BillingKeyRequest.status)
            .where(BillingKeyRequest.customer_uid.in_([c.uid for c in pending]))
        )).all())  # fmt: skip
        s.add_all(BillingKeyRequest(customer_uid=c.uid, merchant_id=c.merchant_id,
                                    status=KR.pending.value, created_at=now, updated_at=now,
                                    pg_account_id=stored_id(c.to_account))
                  for c in pending if c.uid not in known)  # fmt: skip
        # asked again under the same name (a PG replaces the key of a customer_uid); an
        # ``attached`` one is the key of this card's earlier stay at that account, which
        # was deleted when the card left it (the card refers to another key now)
        again = (KR.pending.value, KR.deleted.value, KR.declined.value, KR.attached.value)
        await self._keys(s, [c.uid for c in pending if known.get(c.uid) in again], KR.pending)

    # ------------------------------------------------------------------ steps
    # Each takes many cards (the runner's group commit, :class:`~.coalesce.Coalescer`)
    # in one transaction; per card it is the same compare-and-set as alone.

    async def _take(self, s: AsyncSession, cs: list[Claimed], target: M) -> set[str]:
        """The ids among ``cs`` still in the status the runner saw (locked), which may
        go to ``target``; the others moved on meanwhile."""
        found = await s.execute(
            select(CardMigration.id, CardMigration.status)
            .where(CardMigration.id.in_(sorted(c.id for c in cs)))
            .order_by(CardMigration.id)
            .with_for_update()
        )
        now_in: dict[str, str] = {row[0]: row[1] for row in found}
        return {
            c.id
            for c in cs
            if now_in.get(c.id) == c.status.value and CARD_MIGRATION.can(c.status, target)
        }

    async def _set(self, s: AsyncSession, rows: list[dict[str, Any]]) -> None:
        """Rows' ``status``/``updated_at``/``new_ref``/``error_code`` by id (executemany)."""
        if rows:
            t = table(CardMigration)
            await s.execute(
                t.update().where(t.c.id == bindparam("m_id")).values(
                    status=bindparam("m_status"), updated_at=bindparam("m_at"),
                    new_ref=func.coalesce(bindparam("m_ref"), t.c.new_ref),
                    error_code=func.coalesce(bindparam("m_code"), t.c.error_code)),
                [{"m_ref": None, "m_code": None, **r} for r in rows],
            )  # fmt: skip

    async def _keys(self, s: AsyncSession, uids: list[str], target: KR) -> None:
        if uids:
            t = table(BillingKeyRequest)
            now = self.clock.now()
            await s.execute(
                t.update().where(t.c.customer_uid == bindparam("k_uid"))
                .values(status=target.value, updated_at=now),
                [{"k_uid": u} for u in uids],
            )  # fmt: skip

    async def issued_many(self, items: list[tuple[Claimed, str]]) -> list[bool]:
        """pending -> issued with the new key's reference."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            ok = await self._take(s, [c for c, _ in items], M.issued)
            await self._set(s, [{"m_id": c.id, "m_status": M.issued.value, "m_at": now,
                                 "m_ref": ref} for c, ref in items if c.id in ok])  # fmt: skip
            await self._keys(s, [c.uid for c, _ in items if c.id in ok], KR.issued)
        return [c.id in ok for c, _ in items]

    async def ended_many(self, items: list[tuple[Claimed, M, str]], *, actor: str) -> list[bool]:
        """``failed`` or ``needs_payer``, with the reason's code; audited."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            ok = await self._take(s, [c for c, _, _ in items], M.failed)
            ended = [(c, to, code) for c, to, code in items if c.id in ok]
            await self._set(s, [{"m_id": c.id, "m_status": to.value, "m_at": now,
                                 "m_code": code[:60]} for c, to, code in ended])  # fmt: skip
            await self._keys(s, [c.uid for c, _, _ in ended if c.status is M.pending], KR.declined)
            for c, to, code in ended:
                audit(s, self.clock, actor=actor, action=f"card.migration_{to.value}",
                      object_type="card", object_id=c.card_id, merchant_id=c.merchant_id,
                      details={"migration": c.id, "to_account": c.to_account,
                               "code": code})  # fmt: skip
        return [c.id in ok for c, _, _ in items]

    async def switch_many(self, items: list[Claimed], *, actor: str) -> list[Switch]:
        """The cards charge at the target from now on, in one transaction. Per card:
        ``switched``; ``busy`` while a charge of the card is open (left ``issued`` for
        the next pass); ``card_deleted``/``card_changed`` (then ``failed``); ``moved``
        when another runner moved it on."""
        now = self.clock.now()
        card_ids = sorted(c.card_id for c in items)
        async with self.db.transaction() as s:
            found = await s.execute(
                select(Card.id, Card.status, Card.billing_key_ref, Card.pg_account_id)
                .where(Card.id.in_(card_ids)).order_by(Card.id).with_for_update()
            )  # fmt: skip
            cards = {row[0]: tuple(row) for row in found}
            ok = await self._take(s, items, M.switched)
            busy = set(
                await s.scalars(
                    select(PaymentIntent.card_id)
                    .join(PaymentAttempt, PaymentAttempt.intent_id == PaymentIntent.id)
                    .where(PaymentIntent.card_id.in_(card_ids),
                           PaymentAttempt.status.in_(OPEN_ATTEMPT))
                )
            )  # fmt: skip
            out: list[Switch] = []
            moves: list[dict[str, Any]] = []
            switched: list[Claimed] = []
            for c in items:
                card = cards.get(c.card_id)
                if c.id not in ok or card is None:
                    out.append("moved")
                    continue
                _, status, ref, account = card
                gone: Switch | None = "card_deleted" if status != "active" else None
                if gone is None and (ref != c.old_ref or account != c.from_account):
                    gone = "card_changed"
                if gone is not None:
                    moves.append({"m_id": c.id, "m_status": M.failed.value, "m_at": now,
                                  "m_code": gone})  # fmt: skip
                elif c.card_id in busy:
                    gone = "busy"
                else:
                    moves.append({"m_id": c.id, "m_status": M.switched.value, "m_at": now})
                    switched.append(c)
                out.append(gone or "switched")
            if switched:
                t = table(Card)
                await s.execute(
                    t.update().where(t.c.id == bindparam("c_id"))
                    .values(billing_key_ref=bindparam("c_ref"), pg_account_id=bindparam("c_acct")),
                    [{"c_id": c.card_id, "c_ref": c.new_ref, "c_acct": stored_id(c.to_account)}
                     for c in switched],
                )  # fmt: skip
            await self._set(s, moves)
            await self._keys(s, [c.uid for c in switched], KR.attached)
            for c in switched:
                audit(s, self.clock, actor=actor, action="card.migrate", object_type="card",
                      object_id=c.card_id, merchant_id=c.merchant_id,
                      details={"migration": c.id, "from_account": account_key(c.from_account),
                               "to_account": c.to_account})  # fmt: skip
        return out

    async def done_many(self, items: list[Claimed]) -> list[bool]:
        """switched -> done: the old key is gone."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            ok = await self._take(s, items, M.done)
            await self._set(s, [{"m_id": c.id, "m_status": M.done.value, "m_at": now}
                                for c in items if c.id in ok])  # fmt: skip
        return [c.id in ok for c in items]


def _claimed(m: CardMigration, token: str) -> Claimed:
    return Claimed(id=m.id, merchant_id=m.merchant_id, card_id=m.card_id, token=token,
                   status=M(m.status), from_account=m.from_account_id,
                   to_account=m.to_account_id, old_ref=m.old_ref, new_ref=m.new_ref,
                   uid=billing_key_uid(token, m.to_account_id))  # fmt: skip


def _view(b: CardMigrationBatch, counts: dict[str, int]) -> BatchView:
    return BatchView(id=b.id, merchant_id=b.merchant_id, to_account=b.to_account_id,
                     status=b.status, total=b.total, counts=counts, created_at=b.created_at,
                     finished_at=b.finished_at)  # fmt: skip
