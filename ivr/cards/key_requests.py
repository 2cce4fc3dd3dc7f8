"""Billing keys asked of the PG are named before they are asked, and deleted there when
no card came of them.

A call registers a card by having the vault ask the PG for a billing key under a
``customer_uid`` derived from the vault token (:func:`~ivr.cards.sweep.billing_key_uid`).
When that request fails, times out or the call dies, the flow erases the vault record
at once — but the PG may have issued the key anyway (it answered late, or its answer
was lost), and with the vault record gone nothing would name the key again: a key that
can still be charged with the merchant's credentials, with no card row to show for it.

So :meth:`BillingKeyRequests.note` writes the ``customer_uid`` into the engine database
(``billing_key_requests``, ``pending``) *before* the request — the same rule as an
order id before a charge. The flow then marks it ``issued`` (the PG answered with a key)
or ``declined`` (the PG refused the card: no key), and attaching the card marks it
``attached`` (from then on the card's own life cycle, and the billing-key reaper of
deleted cards, own the key). :meth:`BillingKeyRequests.sweep` (the engine's sweeper)
deletes at the PG every key that ended nowhere: ``pending`` ones once no request can
still land (``settle_s`` after they were noted), ``issued`` ones once the call can no
longer attach them (``grace``: the vault's orphan grace, since a token older than half
of it is never attached). A key the PG does not know is fine; a PG that fails leaves the
row for the next sweep.
"""

from __future__ import annotations

import logging
from dataclasses import KW_ONLY, dataclass
from datetime import timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.audit import audit
from ivr.clock import Clock
from ivr.domain.states import BILLING_KEY_REQUEST, BillingKeyRequestStatus
from ivr.gateways.accounts import Gateways, as_gateways
from ivr.gateways.contract import Gateway
from ivr.gateways.errors import GatewayError
from ivr.store.db import Database
from ivr.store.tables import BillingKeyRequest, Card

log = logging.getLogger(__name__)

ACTOR = "engine:billing-key-requests"
S_ = BillingKeyRequestStatus


@dataclass(eq=False)
class BillingKeyRequests:
    db: Database
    clock: Clock
    gateway: Gateway | Gateways | None = None  # one gateway, or each PG account's
    _: KW_ONLY
    settle: timedelta = timedelta(minutes=2)
    grace: timedelta = timedelta(hours=1)

    async def note(
        self, merchant_id: str, customer_uid: str, account_id: str | None = None
    ) -> None:
        """Name the key and the PG account asked (``None``: default), committed, before
        the PG is asked for it."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            s.add(BillingKeyRequest(customer_uid=customer_uid, merchant_id=merchant_id,
                                    status=S_.pending.value, created_at=now,
                                    updated_at=now, pg_account_id=account_id))  # fmt: skip

    async def issued(self, customer_uid: str) -> None:
        await self._move(customer_uid, S_.issued)

    async def declined(self, customer_uid: str) -> None:
        await self._move(customer_uid, S_.declined)

    async def attached_in(self, s: AsyncSession, customer_uid: str) -> None:
        """In the transaction that attaches the card."""
        row = await s.get(BillingKeyRequest, customer_uid, with_for_update=True)
        if row is not None and BILLING_KEY_REQUEST.can(S_(row.status), S_.attached):
            row.status = S_.attached.value
            row.updated_at = self.clock.now()

    async def _move(self, customer_uid: str, target: BillingKeyRequestStatus) -> None:
        async with self.db.transaction() as s:
            row = await s.get(BillingKeyRequest, customer_uid, with_for_update=True)
            if row is not None and BILLING_KEY_REQUEST.can(S_(row.status), target):
                row.status = target.value
                row.updated_at = self.clock.now()

    async def sweep(self, *, limit: int = 200) -> int:
        """Delete at the PG the keys no card came of; returns how many rows ended."""
        if self.gateway is None:
            return 0
        now = self.clock.now()
        uids = await self.db.all(
            select(BillingKeyRequest.customer_uid)
            .where(
                or_(
                    and_(
                        BillingKeyRequest.status == S_.pending.value,
                        BillingKeyRequest.updated_at <= now - self.settle,
                    ),
                    and_(
                        BillingKeyRequest.status == S_.issued.value,
                        BillingKeyRequest.updated_at <= now - self.grace,
                    ),
                )
            )
            .order_by(BillingKeyRequest.created_at)
            .limit(limit)
        )
        ended = 0
        for uid in uids:
            try:
                ended += await self._end(uid)
            except GatewayError as exc:  # the PG is down: next sweep
                log.warning("billing key %s: delete at the PG failed (%s)", uid, exc.error_id)
        return ended

    async def _end(self, uid: str) -> int:
        async with self.db.sessions() as s:
            card = await s.scalar(select(Card.id).where(Card.billing_key_ref == uid).limit(1))
        if card is not None:  # attached after all (a row from before this table's rule)
            await self._move(uid, S_.attached)
            return 1
        assert self.gateway is not None
        async with self.db.sessions() as s:
            account_id = await s.scalar(
                select(BillingKeyRequest.pg_account_id).where(BillingKeyRequest.customer_uid == uid)
            )
        gateway = await as_gateways(self.gateway).of(account_id)
        known = await gateway.delete_billing_key(uid, reason="registration not completed")
        async with self.db.transaction() as s:
            row = await s.get(BillingKeyRequest, uid, with_for_update=True)
            if row is None or not BILLING_KEY_REQUEST.can(S_(row.status), S_.deleted):
                return 0
            row.status = S_.deleted.value
            row.updated_at = self.clock.now()
            audit(s, self.clock, actor=ACTOR, action="billing_key.delete",
                  object_type="billing_key_request", object_id=uid,
                  merchant_id=row.merchant_id,
                  details={"known_to_pg": known, "reason": "registration not completed"},
            )  # fmt: skip
        return 1
