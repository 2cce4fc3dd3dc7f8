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
   intent ``processing``: :meth:`Charger.drive` resolves it by looking the order up
   (and re-sends the same order id only once the PG positively does not know it) —
   as after a crash between steps 1 and 3.

Throughput (issue #8): the rows are written as value lists, one ``executemany`` per
table and step, not as ORM objects (whose unit of work cost more CPU per charge than
the PG request itself), and nothing written in step 1 is read back in step 3 but the
attempts' and intents' statuses, under lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.audit import audit_values
from ivr.clock import Clock
from ivr.domain.ids import new_id, new_order_id
from ivr.domain.states import ATTEMPT, PAYMENT_INTENT, AttemptStatus, PaymentIntentStatus
from ivr.errors import ArspayError
from ivr.gateways.accounts import Gateways, as_gateways
from ivr.gateways.contract import Buyer, ChargeRequest, ChargeStatus, Gateway, GatewayCharge
from ivr.gateways.errors import GatewayError, GatewayUnavailable
from ivr.notify.notices.record import payment_notices_in
from ivr.payments.charger import ChargePolicy
from ivr.payments.service import PaymentService, check_card, check_terms
from ivr.store.core import table
from ivr.store.tables import AuditLog, Card, Customer, PaymentAttempt, PaymentIntent
from ivr.webhooks.events import emit_many_in
from ivr.webhooks.notices import masked, payment_event

PROCESSING = PAYMENT_INTENT.check(PAYMENT_INTENT.initial, PaymentIntentStatus.processing).value
PENDING = AttemptStatus.pending.value


@dataclass(frozen=True, slots=True)
class NewCharge:
    merchant_id: str
    card_id: str
    amount: int
    order_name: str
    installment_months: int
    source: str
    actor: str


class ChargedCard(NamedTuple):
    """The columns of a card that opening a charge reads."""

    id: str
    merchant_id: str
    customer_id: str
    status: str
    billing_key_ref: str | None
    customer_name: str  # the buyer, for PGs that require one (docs/portone.md)
    customer_mobile: str
    pg_account_id: str | None  # the account holding billing_key_ref (None: default)


@dataclass(frozen=True, slots=True)
class IntentRow:
    """The values of a ``payment_intents`` row this batch inserted: what its payment
    event reports, without reading the row back."""

    id: str
    merchant_id: str
    customer_id: str
    card_id: str
    source: str
    order_name: str
    amount: int
    installment_months: int
    status: str = PROCESSING
    currency: str = "KRW"
    interest_free: bool = False
    schedule_id: str | None = None
    refunded_amount: int = 0


@dataclass(frozen=True, slots=True)
class Opened:
    intent_id: str
    attempt_id: str
    request: ChargeRequest | None  # None: the card has no billing key (a hard failure)
    intent: IntentRow
    order_id: str
    account_id: str | None = None  # the PG account the order goes to (None: default)


@dataclass(frozen=True, slots=True)
class Answer:
    opened: Opened
    result: GatewayCharge | None  # None: outcome unknown (look it up later)


@dataclass(frozen=True, slots=True)
class Outcome:
    """An answer as the attempt row records it (and the payment event reports it)."""

    status: AttemptStatus
    order_id: str
    pg_tx_id: str | None = None
    approval_no: str | None = None
    decline_code: str | None = None
    decline_class: str | None = None
    receipt_url: str | None = None  # the PG's receipt page (ivr/gateways/receipts.py)

    @classmethod
    def of(cls, answer: Answer) -> Outcome:
        order_id, result = answer.opened.order_id, answer.result
        if answer.opened.request is None:  # no billing key: nothing was sent
            return cls(AttemptStatus.failed, order_id, None, None, "no_billing_key", "hard")
        if result is None:
            return cls(AttemptStatus.unknown, order_id)
        if result.status is ChargeStatus.succeeded:
            return cls(AttemptStatus.succeeded, order_id, result.pg_tx_id, result.approval_no,
                       receipt_url=result.receipt_url)  # fmt: skip
        d = result.decline
        code, kind = (d.reason.value, d.kind.value) if d else ("rejected", "hard")
        return cls(AttemptStatus.failed, order_id, None, None, code, kind)

    @property
    def intent_status(self) -> PaymentIntentStatus | None:
        """Where the intent goes; None: it stays ``processing`` (outcome unknown)."""
        return {
            AttemptStatus.succeeded: PaymentIntentStatus.succeeded,
            AttemptStatus.failed: PaymentIntentStatus.failed,
        }.get(self.status)


@dataclass(eq=False)
class ChargeBatch:
    clock: Clock
    gateway: Gateway | Gateways  # one gateway, or each PG account's
    payments: PaymentService
    policy: ChargePolicy = field(default_factory=ChargePolicy)

    async def open_in(
        self, s: AsyncSession, rows: Sequence[NewCharge]
    ) -> list[Opened | ArspayError]:
        """Step 1 for many rows in the caller's transaction; per row its :class:`Opened`
        or the error that refused it (the checks of
        :meth:`PaymentService.create_intent_in`; nothing is written for that row, so
        the other rows go ahead)."""
        now = self.clock.now()
        cards = await self._cards_in(s, {row.card_id for row in rows})
        out: list[Opened | ArspayError] = []
        made: list[tuple[NewCharge, Opened]] = []
        for row in rows:
            try:
                order_name = check_terms(row.amount, row.installment_months, row.order_name)
                card = cards.get(row.card_id)
                check_card(card, row.merchant_id, row.card_id)
            except ArspayError as exc:
                out.append(exc)
                continue
            assert card is not None
            intent = IntentRow(
                id=new_id("pi"),
                merchant_id=row.merchant_id,
                customer_id=card.customer_id,
                card_id=row.card_id,
                source=row.source,
                order_name=order_name,
                amount=row.amount,
                installment_months=row.installment_months,
            )
            order_id = new_order_id()
            request = None
            if card.billing_key_ref:
                request = ChargeRequest(
                    customer_uid=card.billing_key_ref,
                    order_id=order_id,
                    amount=intent.amount,
                    order_name=intent.order_name,
                    installment_months=intent.installment_months,
                    interest_free=intent.interest_free,
                    buyer=Buyer(name=card.customer_name, tel=card.customer_mobile),
                )
            opened = Opened(intent.id, new_id("pa"), request, intent, order_id, card.pg_account_id)
            out.append(opened)
            made.append((row, opened))
        await self._insert_in(s, made, now)
        return out

    @staticmethod
    async def _cards_in(s: AsyncSession, ids: set[str]) -> dict[str, ChargedCard]:
        """The columns of these cards that charging needs, by id (one query). The
        cards are share-locked (PostgreSQL) until the attempts are in: a card moving
        to another PG account switches under its row lock, and not while an attempt
        is open (ivr.pg_accounts.migration), so an order id and its key stay at one
        account."""
        cards, customers = table(Card), table(Customer)
        rows = await s.execute(
            select(
                cards.c.id,
                cards.c.merchant_id,
                cards.c.customer_id,
                cards.c.status,
                cards.c.billing_key_ref,
                customers.c.name,
                customers.c.mobile,
                cards.c.pg_account_id,
            )
            .join(customers, customers.c.id == cards.c.customer_id)
            .where(cards.c.id.in_(ids))
            .with_for_update(read=True, of=cards)
        )
        return {row.id: ChargedCard(*row) for row in rows}

    @staticmethod
    async def _insert_in(
        s: AsyncSession, made: Sequence[tuple[NewCharge, Opened]], now: datetime
    ) -> None:
        """Intents (with their audit rows) before their attempts: three statements."""
        if not made:
            return
        intents = []
        audits = []
        attempts = []
        for row, o in made:
            i = o.intent
            intents.append({
                "id": i.id, "merchant_id": i.merchant_id, "customer_id": i.customer_id,
                "card_id": i.card_id, "schedule_id": i.schedule_id, "source": i.source,
                "order_name": i.order_name, "amount": i.amount, "currency": i.currency,
                "installment_months": i.installment_months, "interest_free": i.interest_free,
                "refunded_amount": i.refunded_amount, "status": i.status,
                "created_at": now, "updated_at": now,
            })  # fmt: skip
            audits.append(
                audit_values(now, actor=row.actor, action="payment_intent.create",
                             object_type="payment_intent", object_id=i.id,
                             merchant_id=i.merchant_id, details={"amount": i.amount})
            )  # fmt: skip
            attempts.append({
                "id": o.attempt_id, "intent_id": i.id, "order_id": o.order_id,
                "amount": i.amount, "status": PENDING, "created_at": now,
                "sent_at": now, "sends": 1,  # its send, claimed: after a crash, a lookup
                "pg_account_id": o.account_id,
            })  # fmt: skip
        await s.execute(insert(table(PaymentIntent)), intents)
        await s.execute(insert(table(AuditLog)), audits)
        await s.execute(insert(table(PaymentAttempt)), attempts)

    async def send(self, opened: Opened) -> Answer:
        """Step 2: the PG request (blind retries only when nothing was sent)."""
        if opened.request is None:
            return Answer(opened, None)
        gateway = await as_gateways(self.gateway).of(opened.account_id)
        for retry in range(self.policy.blind_retries + 1):
            try:
                return Answer(opened, await gateway.charge_billing_key(opened.request))
            except GatewayUnavailable as exc:
                if self.policy.blind_retry(exc, retry):
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
        now = self.clock.now()
        current = await self._statuses_in(s, [a.opened.attempt_id for a in answers])
        out: dict[str, PaymentIntentStatus] = {}
        attempts: list[dict[str, Any]] = []
        intents: list[dict[str, Any]] = []
        ended = []
        told: list[tuple[IntentRow, Outcome]] = []
        for answer in answers:
            opened = answer.opened
            attempt_status, intent_status = current[opened.attempt_id]
            out[opened.intent_id] = PaymentIntentStatus(intent_status)
            if attempt_status != PENDING:
                continue  # a sweep got there first: the charger owns it now
            outcome = Outcome.of(answer)
            ATTEMPT.check(attempt_status, outcome.status)
            finished = now if outcome.status is not AttemptStatus.unknown else None
            attempts.append({
                "attempt_id": opened.attempt_id, "new_status": outcome.status.value,
                "pg_tx_id": outcome.pg_tx_id, "approval_no": outcome.approval_no,
                "receipt_url": outcome.receipt_url,
                "decline_code": outcome.decline_code, "decline_class": outcome.decline_class,
                "finished_at": finished,
            })  # fmt: skip
            target = outcome.intent_status
            if target is None:
                continue  # unknown: the intent stays processing until the lookup
            status = PAYMENT_INTENT.check(intent_status, target).value
            intents.append({"intent_id": opened.intent_id, "new_status": status})
            out[opened.intent_id] = target
            facts = replace(opened.intent, status=status)
            ended.append(payment_event(facts, outcome))
            told.append((facts, outcome))
        await self._update_in(s, attempts, intents, now)
        await emit_many_in(s, self.clock, [masked(e) for e in ended if e is not None])
        await payment_notices_in(s, self.clock, told)  # the payers' notices
        return out

    @staticmethod
    async def _statuses_in(
        s: AsyncSession, attempt_ids: Sequence[str]
    ) -> dict[str, tuple[str, str]]:
        """attempt id -> (its status, its intent's status), both rows locked (one
        query; FOR UPDATE of a join locks the rows of both tables on PostgreSQL)."""
        a, i = table(PaymentAttempt), table(PaymentIntent)
        rows = await s.execute(
            select(a.c.id, a.c.status, i.c.status)
            .join(i, i.c.id == a.c.intent_id)
            .where(a.c.id.in_(list(attempt_ids)))
            .with_for_update()
        )
        return {attempt_id: (status, intent) for attempt_id, status, intent in rows}

    @staticmethod
    async def _update_in(
        s: AsyncSession,
        attempts: list[dict[str, Any]],
        intents: list[dict[str, Any]],
        now: datetime,
    ) -> None:
        """The attempts' outcomes and the intents' new statuses: two statements."""
        if attempts:
            a = table(PaymentAttempt)
            await s.execute(
                update(a)
                .where(a.c.id == bindparam("attempt_id"))
                .values(
                    status=bindparam("new_status"),
                    pg_tx_id=bindparam("pg_tx_id"),
                    approval_no=bindparam("approval_no"),
                    receipt_url=bindparam("receipt_url"),
                    decline_code=bindparam("decline_code"),
                    decline_class=bindparam("decline_class"),
                    finished_at=bindparam("finished_at"),
                ),
                attempts,
            )
        if intents:
            i = table(PaymentIntent)
            await s.execute(
                update(i)
                .where(i.c.id == bindparam("intent_id"))
                .values(status=bindparam("new_status"), updated_at=now),
                intents,
            )
