"""The read model of bulk jobs: a job's progress, and the rows still to do."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from ivr.bulk.jobs import ROWS, find_parent, rows_like
from ivr.domain.states import JobStatus
from ivr.store.db import Database
from ivr.store.scope import Scope
from ivr.store.tables import Job


class BulkJobs:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def pending_rows(self) -> int:
        """Row jobs of every bulk job not finished yet (queued or running)."""
        async with self.db.sessions() as s:
            n = await s.scalar(
                Scope.everyone().where(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.kind.in_(ROWS), Job.status.in_(["queued", "running"])),
                    Job,
                )
            )
        return int(n or 0)

    async def progress(self, merchant_id: str, bulk_id: str) -> dict[str, Any]:
        """:meth:`progress_of` the merchant's bulk job (NotFound for another's)."""
        return await self.progress_of(bulk_id, Scope.of(merchant_id))

    async def progress_of(self, bulk_id: str, scope: Scope | None = None) -> dict[str, Any]:
        """Rows, valid and invalid ones, processed and pending ones (NotFound for a job
        outside ``scope``; none: any merchant's)."""
        scope = scope or Scope.everyone()
        parent = await find_parent(self.db, scope, bulk_id)
        counts = select(Job.status, func.count()).where(Job.dedupe_key.like(rows_like(bulk_id)))
        async with self.db.sessions() as s:
            by_status = dict((await s.execute(scope.where(counts, Job).group_by(Job.status))).all())
        done = by_status.get("done", 0) + by_status.get("dead", 0)
        valid = int(parent.payload["valid"])
        return {
            "bulk_id": bulk_id,
            "kind": parent.payload.get("kind", "charges"),
            "status": "done" if parent.status == JobStatus.done.value else "running",
            "rows": parent.payload["rows"],
            "invalid": len(parent.payload["invalid"]),
            "valid": valid,
            "processed": done,
            "pending": valid - done,
        }
