"""The schedules read model: the schedules the API and the console list, and the cycle
jobs of one schedule, through a :class:`~ivr.store.scope.Scope`."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.billing.scheduler import CYCLE
from ivr.store.scope import Scope
from ivr.store.tables import Job, Schedule


def schedules(
    scope: Scope, *, status: str | None = None, customer_id: str | None = None
) -> Select[Schedule]:
    """The schedules in ``scope`` (to page), optionally of one status or customer."""
    return scope.select(Schedule, status=status, customer_id=customer_id)


async def cycle_jobs(s: AsyncSession, schedule_id: str) -> list[Job]:
    """The cycle jobs of a schedule (read through the scope first)."""
    return [
        j
        for j in await s.scalars(
            select(Job).where(
                Job.kind == CYCLE,
                Job.dedupe_key.startswith(f"sched:{schedule_id}:", autoescape=True),
            )
        )
        if j.payload.get("schedule_id") == schedule_id
    ]
