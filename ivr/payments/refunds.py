"""Refunds: exactly what the merchant asked is cancelled at the PG, once, and every
refund ends.

A refund row is committed, with its first send claimed, before the PG hears of it.
Its ``checksum`` — the refundable balance the engine believes is left — goes with every
send: PortOne refuses a cancel whose checksum differs from its own balance, so of any
number of sends of one refund at most one can apply, and the PG's cancelled amount says
whether it did (``amount - checksum`` before it, that plus the refund's amount after).
At most one refund of an intent is open at a time, so nothing else moves that balance
meanwhile. The rules mirror the charger's (:mod:`ivr.payments.charger`):

* An answer decides: cancelled → ``succeeded``; the first send refused → ``failed``
  (``error_code`` says why; nothing was refunded).
* No answer (timeout, 5xx, reset), or a re-send refused (the earlier send may have
  applied) → ``unknown``, resolved by looking the order up: applied → succeeded; not
  applied within ``settle_s`` of the last send → unknown still; after it → the same
  refund is sent again; ``give_up_s`` after it began → failed (``not_at_pg``). A PG
  balance that matches neither → failed (``pg_balance_mismatch``), logged for a human:
  someone cancelled at the PG directly.
* :meth:`Refunder.reconcile` (the engine's sweeper) settles every refund left open.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from ivr.audit import audit, audit_row
from ivr.domain.ids import new_id
from ivr.domain.states import PAYMENT_INTENT, AttemptStatus, PaymentIntentStatus
from ivr.domain.text import clean_text
from ivr.errors import Conflict, InvalidInput, NotFound
from ivr.gateways.contract import CancelRequest, Gateway
from ivr.gateways.errors import CancelRefused, GatewayError
from ivr.payments.charger import NOT_AT_PG, PgRole
from ivr.payments.queries import succeeded_attempt
from ivr.payments.sends import OPEN, Verdict, claim_send
from ivr.store.scope import Scope
from ivr.store.tables import PaymentAttempt, PaymentIntent, Refund
from ivr.webhooks.notices import refunded_in

log = logging.getLogger(__name__)

SWEEP = "engine:refunds"  # who settles a refund its requester could not wait for
MISMATCH = "pg_balance_mismatch"


@dataclass(eq=False)
class Refunder(PgRole):
    async def refund(
        self,
        merchant_id: str,
        intent_id: str,
        *,
        amount: int | None = None,
        reason: str = "merchant request",
        actor: str = "cli",
        refund_id: str | None = None,
    ) -> Refund:
        """Refund all that is left (``amount=None``) or part of it. Returns the refund:
        ``succeeded``, or ``unknown`` while the PG's answer is missing (it settles
        later, with its ``payment.refunded`` event). A refund the PG refused raises
        :class:`CancelRefused` (the row stays, ``failed``)."""
        reason = clean_text(reason, "reason", max_length=200)  # stored and sent to the PG
        now = self.clock.now()
        async with self.db.transaction() as s:
            scope = Scope.of(merchant_id)
            intent = await scope.one(s, PaymentIntent, intent_id, "payment intent", lock=True)
            if intent.status not in (
                PaymentIntentStatus.succeeded.value,
                PaymentIntentStatus.partially_refunded.value,
            ):
                raise Conflict(f"payment intent {intent_id} is {intent.status}: nothing to refund")
            left = intent.amount - intent.refunded_amount
            value = left if amount is None else amount
            if type(value) is not int or value <= 0:
                raise InvalidInput("refund amount must be a positive integer")
            if value > left:
                raise InvalidInput(f"refund of {value} exceeds the refundable {left} KRW")
            busy = await s.scalar(
                select(Refund.id).where(Refund.intent_id == intent_id, Refund.status.in_(OPEN))
            )
            if busy is not None:
                raise Conflict(f"refund {busy} of payment intent {intent_id} is still in progress")
            attempt = await succeeded_attempt(s, intent_id)
            if attempt is None:
                raise Conflict(f"payment intent {intent_id} has no successful charge")
            row = Refund(
                id=refund_id or new_id("rf"),
                intent_id=intent_id,
                attempt_id=attempt.id,
                amount=value,
                reason=reason[:200],
                status=AttemptStatus.pending.value,
                created_at=now,
                checksum=left,
                sends=1,  # the first send, claimed with the row
                sent_at=now,
            )
            s.add(row)
            audit(s, self.clock, actor=actor, action="refund.create", object_type="refund",
                  object_id=row.id, merchant_id=merchant_id,
                  details={"payment_intent": intent_id, "amount": value})  # fmt: skip
        await self._send(row.id, first=True, actor=actor)
        return await self.settle(row.id, actor=actor)

    async def settle(self, refund_id: str, *, actor: str = SWEEP) -> Refund:
        """Move an open refund as far as the PG lets it now; returns the row. ``actor``
        is audited as who refunded (the requester, or the sweep that settled it)."""
        while True:
            row = await self._load(refund_id)
            if row.status not in OPEN:
                return row
            verdict = await self._resolve(row, actor)
            if verdict is Verdict.wait:
                return row
            if verdict is Verdict.resend and await self._claim(row.id, row.sends):
                await self._send(row.id, first=False, actor=actor)

    async def _load(self, refund_id: str) -> Refund:
        async with self.db.sessions() as s:
            row = await s.get(Refund, refund_id)
        if row is None:
            raise NotFound(f"refund {refund_id} not found")
        return row

    async def _claim(self, refund_id: str, sends: int) -> bool:
        return await claim_send(self.db, self.clock, Refund, refund_id, sends)

    async def _request(self, row: Refund) -> tuple[Gateway, CancelRequest]:
        """The cancel of ``row``, and the gateway of the account its order went to."""
        async with self.db.sessions() as s:
            attempt = await s.get(PaymentAttempt, row.attempt_id)
        assert attempt is not None
        assert row.checksum is not None
        gateway = await self.gateways.of(attempt.pg_account_id)
        return gateway, CancelRequest(
            order_id=attempt.order_id,
            reason=row.reason or "refund",
            checksum=row.checksum,
            amount=None if row.amount == row.checksum else row.amount,
        )

    async def _send(self, refund_id: str, *, first: bool, actor: str) -> None:
        row = await self._load(refund_id)
        gateway, request = await self._request(row)
        try:
            result = await gateway.cancel(request)
        except CancelRefused as exc:
            if first:  # no other send of this refund exists: nothing was refunded
                await self._fail(refund_id, exc.reason.value)
                raise
            await self._mark(refund_id, AttemptStatus.unknown)  # the earlier send may have
            return
        except GatewayError:
            await self._mark(refund_id, AttemptStatus.unknown)
            return
        if result.cancelled_now != row.amount:
            log.error("refund %s: the PG cancelled %d KRW, asked %d", refund_id,
                      result.cancelled_now, row.amount)  # fmt: skip
        await self._succeed(refund_id, actor)

    async def _resolve(self, row: Refund, actor: str) -> Verdict:
        now = self.clock.now()
        in_flight = now < (row.sent_at or row.created_at) + timedelta(seconds=self.policy.settle_s)
        gateway, request = await self._request(row)
        async with self.db.sessions() as s:
            intent = await s.get(PaymentIntent, row.intent_id)
        assert intent is not None
        try:
            found = await gateway.find(request.order_id)
        except GatewayError:
            return Verdict.wait
        if found is None:  # the PG lost a paid order?! never guess about money
            log.error("refund %s: the PG does not know order %s", row.id, request.order_id)
            return Verdict.wait
        before = intent.amount - request.checksum
        if found.cancelled_amount == before + row.amount:
            await self._succeed(row.id, actor)
            return Verdict.settled
        if found.cancelled_amount != before:
            if in_flight:
                return Verdict.wait
            log.error("refund %s: the PG cancelled %d KRW of order %s, expected %d or %d",
                      row.id, found.cancelled_amount, request.order_id, before,
                      before + row.amount)  # fmt: skip
            await self._fail(row.id, MISMATCH)
            return Verdict.settled
        if in_flight:
            return Verdict.wait
        if now - row.created_at >= timedelta(seconds=self.policy.give_up_s):
            await self._fail(row.id, NOT_AT_PG)
            return Verdict.settled
        return Verdict.resend

    async def _mark(self, refund_id: str, status: AttemptStatus) -> None:
        async with self.db.transaction() as s:
            row = await s.get(Refund, refund_id, with_for_update=True)
            if row is not None and row.status == AttemptStatus.pending.value:
                row.status = status.value

    async def _fail(self, refund_id: str, code: str) -> None:
        async with self.db.transaction() as s:
            row = await s.get(Refund, refund_id, with_for_update=True)
            if row is None or row.status not in OPEN:
                return
            row.status = AttemptStatus.failed.value
            row.error_code = code
            row.finished_at = self.clock.now()

    async def _succeed(self, refund_id: str, actor: str) -> None:
        """The refund applied at the PG: the intent's refunded amount and status move,
        once, with the ``payment.refunded`` event."""
        async with self.db.transaction() as s:
            row = await s.get(Refund, refund_id, with_for_update=True)
            assert row is not None
            intent = await s.get(PaymentIntent, row.intent_id, with_for_update=True)
            assert intent is not None
            if row.status not in OPEN:
                if row.status == AttemptStatus.failed.value:
                    log.error("refund %s: failed already, now applied at the PG", refund_id)
                return
            intent.refunded_amount += row.amount
            target = (
                PaymentIntentStatus.refunded
                if intent.refunded_amount == intent.amount
                else PaymentIntentStatus.partially_refunded
            )
            intent.status = PAYMENT_INTENT.check(intent.status, target).value
            intent.updated_at = self.clock.now()
            row.status = AttemptStatus.succeeded.value
            row.finished_at = self.clock.now()
            audit_row(s, self.clock, actor, f"payment_intent.{target.value}", intent,
                      {"amount": row.amount, "refund": row.id})  # fmt: skip
            await refunded_in(s, self.clock, intent, row)  # payment.refunded

    async def reconcile(self, *, limit: int = 500) -> int:
        """Settle every refund left open whose last send is older than ``settle_s``."""
        cutoff = self.clock.now() - timedelta(seconds=self.policy.settle_s)
        ids = await self.db.all(
            select(Refund.id)
            .where(Refund.status.in_(OPEN), Refund.sent_at <= cutoff)
            .order_by(Refund.created_at)
            .limit(limit)
        )
        for refund_id in ids:
            try:
                await self.settle(refund_id)
            except Exception:
                log.exception("reconciling refund %s failed", refund_id)
        return len(ids)
