"""The DID pool read model (the operator's numbers page). DIDs and leases belong to
the operator, not to a merchant: no scope applies."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.domain.states import LeaseStatus
from ivr.store.tables import Did, Lease


async def numbers(s: AsyncSession, *, digits: str, after: str, limit: int) -> list[Did]:
    """Up to ``limit`` numbers containing ``digits``, after ``after``, in number order."""
    q = select(Did)
    if digits:
        q = q.where(Did.number.like(f"%{digits}%"))
    if after:
        q = q.where(Did.number > after)
    return list(await s.scalars(q.order_by(Did.number).limit(limit)))


async def leases_in_use(s: AsyncSession, dids: list[str], now: datetime) -> dict[str, int]:
    """How many active leases each of ``dids`` holds at ``now`` (numbers with none: absent)."""
    rows = await s.execute(
        select(Lease.did, func.count())
        .where(
            Lease.did.in_(dids),
            Lease.status == LeaseStatus.active.value,
            Lease.expires_at > now,
        )
        .group_by(Lease.did)
    )
    return {did: n for did, n in rows.all()}


async def pool_usage(s: AsyncSession, now: datetime) -> tuple[int, int]:
    """(numbers leased now, numbers in the pool)."""
    total = await s.scalar(select(func.count()).select_from(Did)) or 0
    used = (
        await s.scalar(
            select(func.count(func.distinct(Lease.did))).where(
                and_(Lease.status == LeaseStatus.active.value, Lease.expires_at > now)
            )
        )
        or 0
    )
    return used, total
