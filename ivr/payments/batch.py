"""Charging many new intents at once, with the same guarantees as :class:`Charger`.

The one-by-one :meth:`Charger.drive` spends several transactions per charge; a bulk job
of 100,000 rows needs far fewer. :class:`ChargeBatch` splits a charge in three steps so
a caller can do each step for a whole batch in one transaction:

1. :meth:`ChargeBatch.open_in` — in the caller's transaction: each intent, already
   ``processing``, and its first attempt with a fresh order id, marked sent. The
   caller commits this (with its own note of the intent id) *before* step 2 — rule 1
   of the charger: the order id exists before the PG hears of it.
2. :meth:`ChargeBatch.send` — the PG request; ``None`` when the outcome is unknown.
3. :meth:`ChargeBatch.settle_in` — in the caller's transaction: the answer applied to
   attempt and intent. An unknown outcome leaves the attempt ``unknown`` and the
   intent ``processing``: :meth:`Charger.drive` resolves it by looking the order up,
   never by charging again — as after a crash between steps 1 and 3.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import Clock
from ivr.domain.ids import new_id, new_order_id
from ivr.domain.states import ATTEMPT, PAYMENT_INTENT, AttemptStatus, PaymentIntentStatus
from ivr.errors import ArspayError
from ivr.gateways.contract import ChargeRequest, ChargeResult, ChargeStatus, Gateway
from ivr.gateways.errors import GatewayError, GatewayUnavailable
from ivr.payments.charger import ChargePolicy
from ivr.payments.service import PaymentService
from ivr.store.tables import Card, PaymentAttempt, PaymentIntent
from ivr.webhooks.events import emit_many_in
from ivr.webhooks.notices import masked, payment_event


@dataclass(frozen=True, slots=True)
class NewCharge:
    merchant_id: str
    card_id: str
    amount: int
    order_name: str
    installment_months: int
    source: str
    actor: str


@dataclass(frozen=True, slots=True)
class Opened:
    intent_id: str
    attempt_id: str
    request: ChargeRequest | None  # None: the card has no billing key (a hard failure)


@dataclass(frozen=True, slots=True)
class Answer:
    opened: Opened
    result: ChargeResult | None  # None: outcome unknown (look it up later)


class ChargeBatch:
    def __init__(
        self,
        clock: Clock,
        gateway: Gateway,
        payments: PaymentService,
        policy: ChargePolicy | None = None,
    ) -> None:
        self.clock = clock
        self.gateway = gateway
        self.payments = payments
        self.policy = policy or ChargePolicy()

    async def open_in(
        self, s: AsyncSession, rows: Sequence[NewCharge]
    ) -> list[Opened | ArspayError]:
        """Step 1 for many rows in the caller's transaction; per row its :class:`Opened`
        or the error that refused it (raised by the payment service before it added
        anything, so the other rows go ahead). Cards should be loaded in ``s`` already
        (one query for the batch)."""
        now = self.clock.now()
        made: list[tuple[PaymentIntent, Card] | ArspayError] = []
        for row in rows:
            try:
                intent = await self.payments.create_intent_in(
                    s,
                    row.merchant_id,
                    row.card_id,
                    amount=row.amount,
                    order_name=row.order_name,
                    installment_months=row.installment_months,
                    source=row.source,
                    actor=row.actor,
                )
            except ArspayError as exc:
                made.append(exc)
                continue
            card = await s.get(Card, row.card_id)
            assert card is not None
            intent.status = PAYMENT_INTENT.check(
                intent.status, PaymentIntentStatus.processing
            ).value
            made.append((intent, card))
        await s.flush()  # intents before their attempts (no ORM relationship orders them)
        out: list[Opened | ArspayError] = []
        for item in made:
            if isinstance(item, ArspayError):
                out.append(item)
                continue
            intent, card = item
            attempt = PaymentAttempt(
                id=new_id("pa"),
                intent_id=intent.id,
                order_id=new_order_id(),
                amount=intent.amount,
                status=AttemptStatus.pending.value,
                created_at=now,
                sent_at=now,  # about to be sent: after a crash, only a lookup settles it
            )
            s.add(attempt)
            request = None
            if card.billing_key_ref:
                request = ChargeRequest(
                    customer_uid=card.billing_key_ref,
                    order_id=attempt.order_id,
                    amount=intent.amount,
                    order_name=intent.order_name,
                    installment_months=intent.installment_months,
                    interest_free=intent.interest_free,
                )
            out.append(Opened(intent.id, attempt.id, request))
        return out

    async def send(self, opened: Opened) -> Answer:
        """Step 2: the PG request (blind retries only when nothing was sent)."""
        if opened.request is None:
            return Answer(opened, None)
        for retry in range(self.policy.blind_retries + 1):
            try:
                return Answer(opened, await self.gateway.charge_billing_key(opened.request))
            except GatewayUnavailable as exc:
                if exc.retry_safe and retry < self.policy.blind_retries:
                    await asyncio.sleep(self.policy.blind_backoff_s * 2**retry)
                    continue
                return Answer(opened, None)
            except GatewayError:
                return Answer(opened, None)
        return Answer(opened, None)  # pragma: no cover - the loop always returns

    async def settle_in(
        self, s: AsyncSession, answers: Sequence[Answer]
    ) -> dict[str, PaymentIntentStatus]:
        """Step 3 for many answers in the caller's transaction: intent id -> its status
        now (``processing`` for unknown outcomes and rows someone else moved on)."""
        attempt_ids = [a.opened.attempt_id for a in answers]
        intent_ids = [a.opened.intent_id for a in answers]
        attempts = {
            a.id: a
            for a in await s.scalars(
                select(PaymentAttempt).where(PaymentAttempt.id.in_(attempt_ids)).with_for_update()
            )
        }
        intents = {
            i.id: i
            for i in await s.scalars(
                select(PaymentIntent).where(PaymentIntent.id.in_(intent_ids)).with_for_update()
            )
        }
        out: dict[str, PaymentIntentStatus] = {}
        ended = []
        for answer in answers:
            attempt = attempts[answer.opened.attempt_id]
            intent = intents[answer.opened.intent_id]
            before = intent.status
            out[intent.id] = self._apply(attempt, intent, answer)
            if intent.status != before:  # payment.succeeded / payment.failed, once
                ended.append(payment_event(intent, attempt))
        await emit_many_in(s, self.clock, [masked(e) for e in ended if e is not None])
        return out

    def _apply(
        self, attempt: PaymentAttempt, intent: PaymentIntent, answer: Answer
    ) -> PaymentIntentStatus:
        current = PaymentIntentStatus(intent.status)
        if attempt.status != AttemptStatus.pending.value:
            return current  # a sweep got there first: the charger owns it now
        result = answer.result
        if answer.opened.request is None:  # no billing key: nothing was sent
            attempt.status = ATTEMPT.check(attempt.status, AttemptStatus.failed).value
            attempt.decline_code, attempt.decline_class = "no_billing_key", "hard"
            target = PaymentIntentStatus.failed
        elif result is None:
            attempt.status = ATTEMPT.check(attempt.status, AttemptStatus.unknown).value
            return current
        elif result.status is ChargeStatus.succeeded:
            attempt.status = ATTEMPT.check(attempt.status, AttemptStatus.succeeded).value
            attempt.pg_tx_id = result.pg_tx_id
            attempt.approval_no = result.approval_no
            target = PaymentIntentStatus.succeeded
        else:
            d = result.decline
            attempt.status = ATTEMPT.check(attempt.status, AttemptStatus.failed).value
            attempt.decline_code, attempt.decline_class = (
                (d.reason.value, d.kind.value) if d else ("rejected", "hard")
            )
            target = PaymentIntentStatus.failed
        attempt.finished_at = self.clock.now()
        intent.status = PAYMENT_INTENT.check(current, target).value
        intent.updated_at = self.clock.now()
        return target
