"""Finishing a bulk job: when its last row is done, the parent row ends ``done`` and the
merchant gets one ``bulk_job.completed`` event with the rows counted by result.

Any worker that processed rows of a job (or the submission, for a job with no valid
row) asks; the parent's status transition under its row lock decides which one reports,
so two workers finishing together emit one event.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.bulk.jobs import rows_like
from ivr.bulk.progress import BulkJobs
from ivr.clock import Clock
from ivr.domain.states import JOB, JobStatus
from ivr.store.db import Database
from ivr.store.tables import Job
from ivr.webhooks.notices import bulk_completed_in


class Completion:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.jobs = BulkJobs(db)

    async def finish(self, bulk_ids: set[str]) -> None:
        """End each of these bulk jobs whose rows are all done (the others are left)."""
        for bulk_id in bulk_ids:
            p = await self.jobs.progress_of(bulk_id)
            if p["pending"] == 0:
                async with self.db.transaction() as s:
                    parent = await s.scalar(
                        select(Job).where(Job.dedupe_key == bulk_id).with_for_update()
                    )
                    if parent is not None and parent.status == JobStatus.queued.value:
                        parent.status = JOB.check(parent.status, JobStatus.running).value
                        parent.status = JOB.check(parent.status, JobStatus.done).value
                        parent.finished_at = self.clock.now()
                        counts = await _counts_in(s, bulk_id, parent)
                        await bulk_completed_in(
                            s, self.clock, parent.payload["merchant_id"],
                            {**p, "status": "done", "total": p["rows"], **counts},
                        )  # fmt: skip


async def _counts_in(s: AsyncSession, bulk_id: str, parent: Job) -> dict[str, int]:
    """Rows by result — ``succeeded``, ``failed``, ``invalid`` (at submission or when
    processed), ``requested`` (registrations), ``error`` (rows given up on) — so that
    they add up to the job's total rows."""
    result = Job.payload["result"].as_string()
    rows = await s.execute(
        select(result, func.count()).where(Job.dedupe_key.like(rows_like(bulk_id))).group_by(result)
    )
    counts = {"succeeded": 0, "failed": 0, "invalid": len(parent.payload["invalid"])}
    for value, n in rows.all():
        key = str(value or "error")
        counts[key] = counts.get(key, 0) + int(n)
    return counts
