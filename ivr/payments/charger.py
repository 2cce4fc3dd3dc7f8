"""The charging engine: a payer is charged at most once per payment intent, whatever the
PG's timing, and every intent ends.

An intent is charged under **one order id** (one attempt row). The rules:

1. The attempt and its ``order_id`` are committed *before* any request. Every send of
   it — the first and each re-send — is first *claimed* in the row (``sends`` + 1,
   ``sent_at`` = now) under its lock, so two processes never send it at once and a
   crash leaves a row that says the order may be at the PG.
2. An answer decides: paid → ``succeeded``; a decline → ``failed``. Anything else — a
   timeout, a reset, a 5xx, a garbled answer, and on a re-send any refusal (it may be
   the PG's "order id already used" for an order that *was* paid) — leaves the outcome
   ``unknown``. So does a request never sent (the PG unavailable after the blind
   retries, or its account's circuit breaker open — ``CircuitOpen``, not retried
   blindly): rule 3 sends the same order id once the PG is back.
3. An unknown outcome is resolved by asking the PG (:meth:`Gateway.find`), never by
   charging under a new order id. Paid (or cancelled) → succeeded. Failed → failed,
   once no send is in flight. Still in progress, or not known to the PG within
   ``settle_s`` of the last send → stays unknown (the PG may not have recorded it
   *yet*). Not known after ``settle_s`` → the **same order id** is sent again: the PG
   refuses a second payment of one order id, so even a request that was only late
   cannot charge twice. Not known ``give_up_s`` after the attempt began → ``failed``
   with ``not_at_pg``: nothing was charged.
4. A failed attempt fails its intent (a new try is a new intent: the scheduler's retries,
   the payer's next card). A ``created`` intent nobody drove (its creator died) is
   driven by the sweep, or failed unsent once ``give_up_s`` old.
5. :meth:`Charger.reconcile` (the engine's sweeper, on every node) drives every intent
   left ``created``/``processing`` and every open attempt whose last send is older than
   ``settle_s``. Rows change under row locks, through the state machines.

``settle_s`` must exceed the longest time the PG takes to record a request it received
(PortOne: seconds; the default is two minutes).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from ivr.clock import Clock
from ivr.domain.ids import new_id, new_order_id
from ivr.domain.states import (
    ATTEMPT,
    PAYMENT_INTENT,
    AttemptStatus,
    PaymentIntentStatus,
)
from ivr.errors import NotFound
from ivr.gateways.accounts import Gateways, as_gateways
from ivr.gateways.contract import (
    Buyer,
    ChargeRequest,
    ChargeStatus,
    Gateway,
    GatewayCharge,
    PgState,
)
from ivr.gateways.errors import CircuitOpen, GatewayError, GatewayUnavailable
from ivr.payments.queries import attempts_of
from ivr.payments.sends import OPEN, Verdict, claim_send
from ivr.requests.service import CallRequestService
from ivr.settings import GatewaySettings
from ivr.store.db import Database
from ivr.store.tables import Card, Customer, PaymentAttempt, PaymentIntent
from ivr.webhooks.notices import payment_ended_in

log = logging.getLogger(__name__)

UNFINISHED = (PaymentIntentStatus.created.value, PaymentIntentStatus.processing.value)
NOT_AT_PG = "not_at_pg"  # decline code: the PG never recorded the order; nothing charged
NOT_SENT = "not_sent"  # decline code: the intent was never sent (its creator died)


@dataclass(frozen=True, slots=True)
class ChargePolicy:
    blind_retries: int = 3  # connection refused before sending: same order id, at once
    blind_backoff_s: float = 0.2
    settle_s: float = 120.0  # an order the PG does not know is re-sent only this long after
    give_up_s: float = 3600.0  # ... and failed (never charged) this long after it began

    @classmethod
    def from_settings(cls, gw: GatewaySettings) -> ChargePolicy:
        return cls(settle_s=gw.settle_s, give_up_s=gw.give_up_minutes * 60.0)

    def blind_retry(self, exc: GatewayUnavailable, retry: int) -> bool:
        """Whether a request that was not sent goes again at once, under its order id:
        when retry-safe, up to ``blind_retries`` times — but never into an open circuit
        breaker (:class:`CircuitOpen`): it would only refuse again, the attempt waits."""
        return exc.retry_safe and not isinstance(exc, CircuitOpen) and retry < self.blind_retries

    @property
    def recheck_s(self) -> float:
        """How long a worker holding an intent still ``processing`` waits before driving
        it again (a lookup sooner rarely says more; the sweep drives it too)."""
        return min(60.0, max(1.0, self.settle_s / 4))


@dataclass(eq=False)
class PgRole:
    """What the payments roles that send to the PG hold: the charger, the refunder and
    the payment service."""

    db: Database
    clock: Clock
    gateway: Gateway | Gateways  # one gateway, or each PG account's (ivr.gateways.accounts)
    policy: ChargePolicy = field(default_factory=ChargePolicy)

    @property
    def gateways(self) -> Gateways:
        return as_gateways(self.gateway)


@dataclass(eq=False)
class Charger(PgRole):
    # Completes a payment request whose call ended before its charge did (None: the
    # request is left to expire, as before).
    requests: CallRequestService | None = None

    # ------------------------------------------------------------------ driving

    async def drive(self, intent_id: str) -> PaymentIntentStatus:
        """Move an intent as far as the PG lets it now: ``succeeded``/``failed``, or
        ``processing`` while an outcome is unknown (the sweep drives it on). Safe to
        call from any number of processes at once."""
        while True:
            step = await self._next_step(intent_id)
            if isinstance(step, PaymentIntentStatus):
                return step
            if step.sends == 0:  # never sent: nothing to look up
                if await self._claim(step.id, 0):
                    await self._send(step, first=True)
                continue
            verdict = await self._resolve(step)
            if verdict is Verdict.wait:
                return PaymentIntentStatus.processing
            if verdict is Verdict.resend and await self._claim(step.id, step.sends):
                await self._send(step, first=False)

    async def _next_step(self, intent_id: str) -> PaymentAttempt | PaymentIntentStatus:
        """Under the intent's row lock: finish it, or return its open attempt (a new
        one, committed before any request, when it has none)."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            intent = await s.get(PaymentIntent, intent_id, with_for_update=True)
            if intent is None:
                raise NotFound(f"payment intent {intent_id} not found")
            status = PaymentIntentStatus(intent.status)
            if status not in (PaymentIntentStatus.created, PaymentIntentStatus.processing):
                return status
            attempts = await attempts_of(s, intent_id)
            won = [a for a in attempts if a.status == AttemptStatus.succeeded.value]
            if won:
                done = self._finish(intent, PaymentIntentStatus.succeeded, now)
                await payment_ended_in(s, self.clock, intent, won[0])  # payment.succeeded
                if self.requests is not None:
                    await self.requests.payment_settled_in(s, intent.id)
                return done
            open_ = [a for a in attempts if a.status in OPEN]
            if open_:
                return open_[0]
            if attempts:  # every attempt failed: so did the intent
                done = self._finish(intent, PaymentIntentStatus.failed, now)
                await payment_ended_in(s, self.clock, intent, attempts[-1])  # payment.failed
                return done
            if now - intent.created_at >= timedelta(seconds=self.policy.give_up_s):
                # Created, never sent, its creator long gone: charging now would surprise.
                attempt = self._new_attempt(intent, now)
                attempt.status = ATTEMPT.check(attempt.status, AttemptStatus.failed).value
                attempt.decline_code, attempt.finished_at = NOT_SENT, now
                s.add(attempt)
                done = self._finish(intent, PaymentIntentStatus.failed, now)
                await payment_ended_in(s, self.clock, intent, attempt)
                return done
            if status is PaymentIntentStatus.created:
                intent.status = PAYMENT_INTENT.check(status, PaymentIntentStatus.processing)
                intent.updated_at = now
            attempt = self._new_attempt(intent, now)
            # The card's account, under the card's row lock: a card moving to another
            # account (ivr.pg_accounts.migration) switches under the same lock, and
            # not while an attempt is open, so this order id and the key it charges
            # stay at one account.
            card = (
                await s.get(Card, intent.card_id, with_for_update=True) if intent.card_id else None
            )
            attempt.pg_account_id = card.pg_account_id if card is not None else None
            s.add(attempt)
            return attempt

    @staticmethod
    def _new_attempt(intent: PaymentIntent, now: datetime) -> PaymentAttempt:
        return PaymentAttempt(
            id=new_id("pa"),
            intent_id=intent.id,
            order_id=new_order_id(),
            amount=intent.amount,
            status=AttemptStatus.pending.value,
            created_at=now,
            sends=0,
        )

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

    async def _claim(self, attempt_id: str, sends: int) -> bool:
        """Claim the attempt's next send (see :func:`~ivr.payments.sends.claim_send`)."""
        return await claim_send(self.db, self.clock, PaymentAttempt, attempt_id, sends)

    async def _send(self, attempt: PaymentAttempt, *, first: bool) -> None:
        """One send of the attempt's order id (with blind retries while nothing was
        sent), and what its answer proves."""
        async with self.db.sessions() as s:
            intent = await s.get(PaymentIntent, attempt.intent_id)
            card = await s.get(Card, intent.card_id) if intent and intent.card_id else None
            customer = await s.get(Customer, card.customer_id) if card else None
        if intent is None or card is None or not card.billing_key_ref:
            await self._settle(attempt.id, AttemptStatus.failed, decline=("no_billing_key", "hard"))
            return
        if card.pg_account_id != attempt.pg_account_id:  # cannot happen (see _next_step)
            log.error("order %s: its card moved to another PG account", attempt.order_id)
            if first:  # nothing was sent anywhere: end it; a new attempt goes to the new one
                await self._settle(attempt.id, AttemptStatus.failed, decline=("card_moved", "soft"))
            else:  # it may be at the old account: only a lookup there can tell
                await self._settle(attempt.id, AttemptStatus.unknown)
            return
        gateway = await self.gateways.of(attempt.pg_account_id)
        request = ChargeRequest(
            customer_uid=card.billing_key_ref,
            order_id=attempt.order_id,
            amount=attempt.amount,
            order_name=intent.order_name,
            installment_months=intent.installment_months,
            interest_free=intent.interest_free,
            buyer=Buyer(name=customer.name, tel=customer.mobile) if customer else None,
        )
        result: GatewayCharge | None = None
        for retry in range(self.policy.blind_retries + 1):
            try:
                result = await gateway.charge_billing_key(request)
                break
            except GatewayUnavailable as exc:  # not sent: the same order id again is safe
                if self.policy.blind_retry(exc, retry):
                    await asyncio.sleep(self.policy.blind_backoff_s * 2**retry)
                    continue
                break
            except GatewayError:  # OutcomeUnknown, DuplicateOrder, a garbled answer...
                break
        if result is None or (result.refused and not first):
            # No answer, or a refusal of an order id sent before (perhaps "already
            # paid"): only a lookup can tell.
            await self._settle(attempt.id, AttemptStatus.unknown)
        else:
            await self._apply_result(attempt.id, result)

    async def _resolve(self, attempt: PaymentAttempt) -> Verdict:
        """Ask the PG about an open attempt that was sent (rule 3 of the module)."""
        now = self.clock.now()
        in_flight = now < (attempt.sent_at or attempt.created_at) + timedelta(
            seconds=self.policy.settle_s
        )
        try:
            gateway = await self.gateways.of(attempt.pg_account_id)
            found = await gateway.find(attempt.order_id)
        except GatewayError:
            return Verdict.wait
        if found is not None and found.state in (PgState.paid, PgState.cancelled):
            if found.amount != attempt.amount:
                log.error(
                    "order %s: the PG charged %d KRW, the attempt was for %d",
                    attempt.order_id, found.amount, attempt.amount,
                )  # fmt: skip
            await self._settle(attempt.id, AttemptStatus.succeeded, pg_tx_id=found.pg_tx_id,
                               approval_no=found.approval_no,
                               receipt_url=found.receipt_url)  # fmt: skip
            return Verdict.settled
        if found is not None and found.state is PgState.failed and not in_flight:
            d = found.decline
            decline = (d.reason.value, d.kind.value) if d else ("rejected", "hard")
            await self._settle(attempt.id, AttemptStatus.failed, decline=decline)
            return Verdict.settled
        if found is not None or in_flight:  # ready (in progress), or maybe not recorded yet
            return Verdict.wait
        if now - attempt.created_at >= timedelta(seconds=self.policy.give_up_s):
            await self._settle(attempt.id, AttemptStatus.failed, code=NOT_AT_PG)
            return Verdict.settled
        return Verdict.resend

    async def _apply_result(self, attempt_id: str, result: GatewayCharge) -> None:
        if result.status is ChargeStatus.succeeded:
            await self._settle(
                attempt_id,
                AttemptStatus.succeeded,
                pg_tx_id=result.pg_tx_id,
                approval_no=result.approval_no,
                receipt_url=result.receipt_url,
            )
        else:
            d = result.decline
            decline = (d.reason.value, d.kind.value) if d else ("rejected", "hard")
            await self._settle(attempt_id, AttemptStatus.failed, decline=decline)

    async def _settle(
        self,
        attempt_id: str,
        target: AttemptStatus,
        *,
        decline: tuple[str, str] | None = None,
        code: str | None = None,
        pg_tx_id: str | None = None,
        approval_no: str | None = None,
        receipt_url: str | None = None,
    ) -> None:
        """Record what the PG said. An attempt already ended by another process (a
        lookup that got there first) keeps its end."""
        async with self.db.transaction() as s:
            row = await s.get(PaymentAttempt, attempt_id, with_for_update=True)
            if row is None:
                raise NotFound(f"attempt {attempt_id} not found")
            if row.status == target.value:
                return
            if ATTEMPT.is_terminal(row.status):
                if ATTEMPT.is_terminal(target):  # two answers disagree: a human must look
                    log.error("order %s: %s already, now told %s", row.order_id, row.status,
                              target.value)  # fmt: skip
                return
            row.status = ATTEMPT.check(row.status, target).value
            if ATTEMPT.is_terminal(target):
                row.finished_at = self.clock.now()
            if decline is not None:
                row.decline_code, row.decline_class = decline
            elif code is not None:
                row.decline_code = code
            row.pg_tx_id = pg_tx_id or row.pg_tx_id
            row.approval_no = approval_no or row.approval_no
            row.receipt_url = receipt_url or row.receipt_url

    # ------------------------------------------------------------------ sweeping

    async def reconcile(self, *, limit: int = 500) -> int:
        """Drive every intent a process left behind: open attempts last sent more than
        ``settle_s`` ago (or never sent, their claimant dead), and intents still
        ``created``/``processing`` that long after their last change. Returns how
        many intents were looked at."""
        cutoff = self.clock.now() - timedelta(seconds=self.policy.settle_s)
        async with self.db.sessions() as s:
            ids = set(
                await s.scalars(
                    select(PaymentAttempt.intent_id)
                    .where(
                        PaymentAttempt.status.in_(OPEN),
                        or_(
                            PaymentAttempt.sent_at <= cutoff,
                            PaymentAttempt.sent_at.is_(None)
                            & (PaymentAttempt.created_at <= cutoff),
                        ),
                    )
                    .limit(limit)
                )
            )
            ids |= set(
                await s.scalars(
                    select(PaymentIntent.id)
                    .where(
                        PaymentIntent.status.in_(
                            [
                                PaymentIntentStatus.created.value,
                                PaymentIntentStatus.processing.value,
                            ]
                        ),
                        PaymentIntent.updated_at <= cutoff,
                    )
                    .limit(limit)
                )
            )
        for intent_id in sorted(ids):
            try:
                await self.drive(intent_id)
            except Exception:  # one bad intent must not stop the others
                log.exception("reconciling payment intent %s failed", intent_id)
        return len(ids)
