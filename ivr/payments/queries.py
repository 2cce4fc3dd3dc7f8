"""The payments read model: a payment's attempts (all, the last, the one that charged)
and refunds, the payments and attempts of a schedule, the dashboard's money figures —
for the API, the console, the charger, refunds, the scheduler and the call flow. Each
merchant-owned read goes through a :class:`~ivr.store.scope.Scope`; attempts and refunds
are read by the id of their payment."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.domain.states import AttemptStatus
from ivr.store.scope import Scope
from ivr.store.tables import PaymentAttempt, PaymentIntent, Refund


def payments(
    scope: Scope, *, status: str | None = None, customer_id: str | None = None
) -> Select[PaymentIntent]:
    """The payments in ``scope`` (to page), optionally of one status or customer."""
    return scope.select(PaymentIntent, status=status, customer_id=customer_id)


async def attempts_of(s: AsyncSession, intent_id: str) -> list[PaymentAttempt]:
    """Every attempt at the PG of a payment (read through the scope first), oldest first."""
    return list(
        await s.scalars(
            select(PaymentAttempt)
            .where(PaymentAttempt.intent_id == intent_id)
            .order_by(PaymentAttempt.created_at, PaymentAttempt.id)
        )
    )


async def last_attempt(s: AsyncSession, intent_id: str) -> PaymentAttempt | None:
    """The newest attempt of a payment, if any."""
    found: PaymentAttempt | None = await s.scalar(
        select(PaymentAttempt)
        .where(PaymentAttempt.intent_id == intent_id)
        .order_by(PaymentAttempt.created_at.desc(), PaymentAttempt.id.desc())
        .limit(1)
    )
    return found


async def succeeded_attempt(s: AsyncSession, intent_id: str) -> PaymentAttempt | None:
    """The attempt that charged a payment (at most one succeeds), if any."""
    found: PaymentAttempt | None = await s.scalar(
        select(PaymentAttempt).where(
            PaymentAttempt.intent_id == intent_id,
            PaymentAttempt.status == AttemptStatus.succeeded.value,
        )
    )
    return found


async def refunds_of(s: AsyncSession, intent_id: str) -> list[Refund]:
    """Every refund of a payment (read through the scope first), in id order."""
    return list(
        await s.scalars(select(Refund).where(Refund.intent_id == intent_id).order_by(Refund.id))
    )


async def schedule_payments(s: AsyncSession, scope: Scope, schedule_id: str) -> list[PaymentIntent]:
    """The payments a schedule made, oldest first."""
    q = scope.where(select(PaymentIntent).where(PaymentIntent.schedule_id == schedule_id),
                    PaymentIntent)  # fmt: skip
    return list(await s.scalars(q.order_by(PaymentIntent.created_at, PaymentIntent.id)))


async def schedule_attempts(
    s: AsyncSession, scope: Scope, schedule_id: str
) -> dict[str, list[PaymentAttempt]]:
    """The attempts of a schedule's payments, by payment id, oldest first."""
    attempts: dict[str, list[PaymentAttempt]] = {}
    for a in await s.scalars(
        _attempts_in(scope, PaymentAttempt)
        .where(PaymentIntent.schedule_id == schedule_id)
        .order_by(PaymentAttempt.created_at, PaymentAttempt.id)
    ):
        attempts.setdefault(a.intent_id, []).append(a)
    return attempts


def _attempts_in(scope: Scope, *columns: Any) -> Select[Any]:
    return scope.where(
        select(*columns).join(PaymentIntent, PaymentIntent.id == PaymentAttempt.intent_id),
        PaymentIntent,
    )


async def collected_since(
    s: AsyncSession, scope: Scope, since: datetime
) -> list[tuple[datetime | None, int]]:
    """(finished at, amount) of each attempt that succeeded since ``since``."""
    q = _attempts_in(scope, PaymentAttempt.finished_at, PaymentAttempt.amount).where(
        PaymentAttempt.status == AttemptStatus.succeeded.value,
        PaymentAttempt.finished_at >= since,
    )
    return [(at, amount) for at, amount in (await s.execute(q)).all()]


async def attempt_counts(s: AsyncSession, scope: Scope, since: datetime) -> dict[str, int]:
    """How many attempts made since ``since`` ended in each status."""
    q = (
        _attempts_in(scope, PaymentAttempt.status, func.count())
        .where(PaymentAttempt.created_at >= since)
        .group_by(PaymentAttempt.status)
    )
    return {st: n for st, n in (await s.execute(q)).all()}


async def retried_outcomes(s: AsyncSession, scope: Scope, since: datetime) -> dict[str, int]:
    """The statuses of the payments made since ``since`` that took more than one
    attempt: how many ended in each."""
    tries = (
        select(PaymentAttempt.intent_id.label("intent_id"))
        .join(PaymentIntent, PaymentIntent.id == PaymentAttempt.intent_id)
        .where(PaymentIntent.created_at >= since)
        .group_by(PaymentAttempt.intent_id)
        .having(func.count() > 1)
    )
    q = scope.where(
        select(PaymentIntent.status, func.count())
        .where(PaymentIntent.id.in_(tries))
        .group_by(PaymentIntent.status),
        PaymentIntent,
    )
    return {st: n for st, n in (await s.execute(q)).all()}


async def attempt_by_order_id(s: AsyncSession, order_id: str) -> PaymentAttempt | None:
    """The attempt sent to the PG under ``order_id`` (a PG notification names it; the PG
    account is the engine's, so this read is not a merchant's)."""
    found: PaymentAttempt | None = await s.scalar(
        select(PaymentAttempt).where(PaymentAttempt.order_id == order_id)
    )
    return found


async def open_refunds_of(s: AsyncSession, attempt_id: str) -> list[Refund]:
    """The refunds of an attempt that were sent and have no answer yet."""
    return list(
        await s.scalars(
            select(Refund).where(
                Refund.attempt_id == attempt_id,
                Refund.status.in_([AttemptStatus.pending.value, AttemptStatus.unknown.value]),
                Refund.sends > 0,
            )
        )
    )
