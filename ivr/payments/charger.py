"""The charging engine: exactly one PG charge per payment intent.

Rules (PRODUCT section 6, issue #5):

1. An attempt row with its own ``order_id`` is committed *before* the PG request.
2. Only a connection failure before the request was sent (``GatewayUnavailable`` with
   ``retry_safe``) is retried blindly — with the same order id, so even a wrong guess
   could not charge twice (the PG dedupes per order id).
3. A timeout, a reset or a 5xx after sending makes the attempt ``unknown``; it is
   resolved by asking the PG (``find``), never by charging again. ``find`` -> paid:
   succeeded; failed: failed; not found: the PG never saw it, so it is ``failed`` and a
   *new* attempt (new order id) may follow.
4. A crash leaves ``pending``/``unknown`` attempts; :meth:`Charger.drive` (and the
   reconciliation sweep) resolves them first, after ``settle_s`` so a request still in
   flight at the PG has landed.
5. Intent and attempt rows are changed under a row lock through the state machines.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from ivr.clock import Clock
from ivr.domain.ids import new_id, new_order_id
from ivr.domain.states import (
    ATTEMPT,
    PAYMENT_INTENT,
    AttemptStatus,
    PaymentIntentStatus,
)
from ivr.errors import NotFound
from ivr.gateways.contract import ChargeRequest, ChargeResult, ChargeStatus, Gateway, PgState
from ivr.gateways.errors import GatewayError, GatewayUnavailable, OutcomeUnknown
from ivr.store.db import Database
from ivr.store.tables import Card, PaymentAttempt, PaymentIntent
from ivr.webhooks.notices import payment_ended_in

OPEN = (AttemptStatus.pending.value, AttemptStatus.unknown.value)


@dataclass(frozen=True, slots=True)
class ChargePolicy:
    blind_retries: int = 3  # connection failures before sending, same order id
    blind_backoff_s: float = 0.2
    max_attempts: int = 3  # attempts per intent when the PG never saw the previous one
    settle_s: float = 30.0  # age after which a pending attempt is looked up, not trusted


class Charger:
    def __init__(
        self, db: Database, clock: Clock, gateway: Gateway, policy: ChargePolicy | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.gateway = gateway
        self.policy = policy or ChargePolicy()

    # ------------------------------------------------------------------ driving

    async def drive(self, intent_id: str, *, recovering: bool = False) -> PaymentIntentStatus:
        """Move an intent until it is succeeded or failed (or an outcome stays unknown).

        ``recovering``: this process did not create the open attempts (restart, sweep):
        they are looked up at once instead of waiting ``settle_s``."""
        while True:
            step = await self._next_step(intent_id, recovering)
            if isinstance(step, PaymentIntentStatus):
                return step
            if step.status == AttemptStatus.pending.value and step.sent_at is None:
                await self._send(step)
            else:
                if not await self._resolve(step, recovering):
                    return PaymentIntentStatus.processing  # still unknown: the sweep retries
            recovering = True  # from here on, open attempts were left by this loop

    async def _next_step(
        self, intent_id: str, recovering: bool
    ) -> PaymentAttempt | PaymentIntentStatus:
        """Under the intent's row lock: finish it, or return the attempt to work on
        (an open one, or a new one committed before any request)."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            intent = await s.get(PaymentIntent, intent_id, with_for_update=True)
            if intent is None:
                raise NotFound(f"payment intent {intent_id} not found")
            status = PaymentIntentStatus(intent.status)
            if status not in (PaymentIntentStatus.created, PaymentIntentStatus.processing):
                return status
            attempts = list(
                await s.scalars(
                    select(PaymentAttempt)
                    .where(PaymentAttempt.intent_id == intent_id)
                    .order_by(PaymentAttempt.created_at)
                )
            )
            won = [a for a in attempts if a.status == AttemptStatus.succeeded.value]
            if won:
                done = self._finish(intent, PaymentIntentStatus.succeeded, now)
                await payment_ended_in(s, self.clock, intent, won[0])  # payment.succeeded
                return done
            open_ = [a for a in attempts if a.status in OPEN]
            if open_:
                return open_[0]
            failed = [a for a in attempts if a.status == AttemptStatus.failed.value]
            declined = any(a.decline_class is not None for a in failed)
            if declined or len(failed) >= self.policy.max_attempts:
                done = self._finish(intent, PaymentIntentStatus.failed, now)
                await payment_ended_in(s, self.clock, intent, failed[-1] if failed else None)
                return done
            if status is PaymentIntentStatus.created:
                intent.status = PAYMENT_INTENT.check(status, PaymentIntentStatus.processing)
                intent.updated_at = now
            attempt = PaymentAttempt(
                id=new_id("pa"),
                intent_id=intent.id,
                order_id=new_order_id(),
                amount=intent.amount,
                status=AttemptStatus.pending.value,
                created_at=now,
            )
            s.add(attempt)
            return attempt

    def _finish(
        self, intent: PaymentIntent, target: PaymentIntentStatus, now: datetime
    ) -> PaymentIntentStatus:
        current = PaymentIntentStatus(intent.status)
        if current is PaymentIntentStatus.created:  # never sent anything
            PAYMENT_INTENT.check(current, PaymentIntentStatus.processing)
            current = PaymentIntentStatus.processing
        intent.status = PAYMENT_INTENT.check(current, target).value
        intent.updated_at = now
        return target

    async def _send(self, attempt: PaymentAttempt) -> None:
        async with self.db.sessions() as s:
            intent = await s.get(PaymentIntent, attempt.intent_id)
            card = await s.get(Card, intent.card_id) if intent and intent.card_id else None
        if intent is None or card is None or not card.billing_key_ref:
            await self._settle(attempt.id, AttemptStatus.failed, decline=("no_billing_key", "hard"))
            return
        request = ChargeRequest(
            customer_uid=card.billing_key_ref,
            order_id=attempt.order_id,
            amount=attempt.amount,
            order_name=intent.order_name,
            installment_months=intent.installment_months,
            interest_free=intent.interest_free,
        )
        await self._mark_sent(attempt.id)
        for retry in range(self.policy.blind_retries + 1):
            try:
                result = await self.gateway.charge_billing_key(request)
            except GatewayUnavailable as exc:
                if exc.retry_safe and retry < self.policy.blind_retries:
                    await asyncio.sleep(self.policy.blind_backoff_s * 2**retry)
                    continue
                # never reached the PG (or cannot): the lookup decides, as for unknowns
                await self._settle(attempt.id, AttemptStatus.unknown)
                return
            except OutcomeUnknown:
                await self._settle(attempt.id, AttemptStatus.unknown)
                return
            except GatewayError:
                await self._settle(attempt.id, AttemptStatus.unknown)
                return
            await self._apply_result(attempt.id, result)
            return

    async def _resolve(self, attempt: PaymentAttempt, recovering: bool) -> bool:
        """Ask the PG about an open attempt. False if it must stay open for now."""
        if attempt.status == AttemptStatus.pending.value and not recovering:
            settle_at = (attempt.sent_at or attempt.created_at) + timedelta(
                seconds=self.policy.settle_s
            )
            if self.clock.now() < settle_at:
                return False
        try:
            found = await self.gateway.find(attempt.order_id)
        except GatewayError:
            if attempt.status == AttemptStatus.pending.value:
                await self._settle(attempt.id, AttemptStatus.unknown)
            return False
        if found is None or found.state in (PgState.ready,):
            # The PG never saw (or never completed) this order id: nothing was charged.
            await self._settle(attempt.id, AttemptStatus.failed, decline=None, code="not_at_pg")
        elif found.state in (PgState.paid, PgState.cancelled):
            await self._settle(
                attempt.id,
                AttemptStatus.succeeded,
                pg_tx_id=found.pg_tx_id,
                approval_no=found.approval_no,
            )
        else:
            d = found.decline
            decline = (d.reason.value, d.kind.value) if d else ("rejected", "hard")
            await self._settle(attempt.id, AttemptStatus.failed, decline=decline)
        return True

    async def _apply_result(self, attempt_id: str, result: ChargeResult) -> None:
        if result.status is ChargeStatus.succeeded:
            await self._settle(
                attempt_id,
                AttemptStatus.succeeded,
                pg_tx_id=result.pg_tx_id,
                approval_no=result.approval_no,
            )
        else:
            d = result.decline
            decline = (d.reason.value, d.kind.value) if d else ("rejected", "hard")
            await self._settle(attempt_id, AttemptStatus.failed, decline=decline)

    async def _mark_sent(self, attempt_id: str) -> None:
        async with self.db.transaction() as s:
            row = await s.get(PaymentAttempt, attempt_id, with_for_update=True)
            if row is not None and row.sent_at is None:
                row.sent_at = self.clock.now()

    async def _settle(
        self,
        attempt_id: str,
        target: AttemptStatus,
        *,
        decline: tuple[str, str] | None = None,
        code: str | None = None,
        pg_tx_id: str | None = None,
        approval_no: str | None = None,
    ) -> None:
        async with self.db.transaction() as s:
            row = await s.get(PaymentAttempt, attempt_id, with_for_update=True)
            if row is None:
                raise NotFound(f"attempt {attempt_id} not found")
            if row.status == target.value:
                return
            row.status = ATTEMPT.check(row.status, target).value
            if row.sent_at is None:
                row.sent_at = self.clock.now()
            if ATTEMPT.is_terminal(target):
                row.finished_at = self.clock.now()
            if decline is not None:
                row.decline_code, row.decline_class = decline
            elif code is not None:
                row.decline_code = code
            row.pg_tx_id = pg_tx_id or row.pg_tx_id
            row.approval_no = approval_no or row.approval_no

    # ------------------------------------------------------------------ sweeping

    async def reconcile(self, *, older_than_s: float | None = None, limit: int = 500) -> int:
        """Drive every intent that has an open attempt or was left ``processing``.
        Returns how many intents were looked at."""
        age = self.policy.settle_s if older_than_s is None else older_than_s
        cutoff = self.clock.now() - timedelta(seconds=age)
        async with self.db.sessions() as s:
            ids = set(
                await s.scalars(
                    select(PaymentAttempt.intent_id)
                    .where(PaymentAttempt.status.in_(OPEN), PaymentAttempt.created_at <= cutoff)
                    .limit(limit)
                )
            )
            ids |= set(
                await s.scalars(
                    select(PaymentIntent.id)
                    .where(
                        PaymentIntent.status == PaymentIntentStatus.processing.value,
                        PaymentIntent.updated_at <= cutoff,
                    )
                    .limit(limit)
                )
            )
        for intent_id in sorted(ids):
            await self.drive(intent_id, recovering=True)
        return len(ids)
