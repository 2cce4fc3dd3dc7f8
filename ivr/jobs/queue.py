"""The durable job queue in the ``jobs`` table: how every engine process shares work.

- :meth:`JobQueue.enqueue_in` adds a job in the caller's transaction; a ``dedupe_key``
  makes enqueueing the same work twice a no-op (the unique index decides, so two
  processes racing still make one job).
- :meth:`JobQueue.claim` takes due jobs for this worker: ``queued`` ones whose
  ``run_at`` has come, and ``running`` ones whose lock expired (their worker died). On
  PostgreSQL the candidates are locked ``FOR UPDATE SKIP LOCKED`` so claimers never wait
  on each other or take the same job; SQLite has one writer at a time (BEGIN IMMEDIATE),
  which gives the same guarantee on one node.
- :meth:`JobQueue.complete` / :meth:`JobQueue.fail` end a claim; ``fail`` re-queues
  with a delay until ``max_attempts``, then the job is ``dead`` (visible, never lost).
  Both take the claimed :class:`Job` and check the stored row is still held by that very
  claim (a token per claim), so a claim whose lock expired — in another process or in
  this one — cannot overwrite the newer claim's result.

A job handler must be idempotent with respect to its effects (a worker can die after
the effect and before ``complete``); the charging engine's order ids make charges so.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from ivr.clock import Clock
from ivr.domain.states import JOB, JobStatus
from ivr.errors import InvalidInput
from ivr.store.core import table
from ivr.store.db import Database
from ivr.store.tables import Job


@dataclass(eq=False)
class JobQueue:
    db: Database
    clock: Clock
    _: KW_ONLY
    worker_id: str

    def __post_init__(self) -> None:
        if not self.worker_id or len(self.worker_id) > 64:
            raise InvalidInput("worker_id must be 1-64 characters")

    # ------------------------------------------------------------------ adding

    async def enqueue_in(
        self,
        s: AsyncSession,
        kind: str,
        payload: dict[str, Any],
        *,
        run_at: datetime | None = None,
        dedupe_key: str | None = None,
        max_attempts: int = 10,
    ) -> bool:
        """Add a job; False if ``dedupe_key`` already named one (nothing added)."""
        _check(kind, () if dedupe_key is None else (dedupe_key,))
        now = self.clock.now()
        values = _row(kind, payload, dedupe_key, run_at or now, max_attempts, now)
        stmt = self._insert().values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
        result = await s.execute(stmt)
        return bool(getattr(result, "rowcount", 1))

    async def enqueue_many_in(
        self,
        s: AsyncSession,
        kind: str,
        jobs: Sequence[tuple[dict[str, Any], str]],
        *,
        max_attempts: int = 10,
        chunk: int = 500,
    ) -> None:
        """Add many jobs of one kind, each ``(payload, dedupe_key)``, due now, in
        multi-row statements of ``chunk`` rows (a 10,000-row bulk upload was 10,000
        statements); a key that already names a job adds nothing, as in
        :meth:`enqueue_in`."""
        _check(kind, [key for _, key in jobs])
        now = self.clock.now()
        for start in range(0, len(jobs), chunk):
            rows = [
                _row(kind, payload, key, now, max_attempts, now)
                for payload, key in jobs[start : start + chunk]
            ]
            stmt = self._insert().values(rows).on_conflict_do_nothing(index_elements=["dedupe_key"])
            await s.execute(stmt)

    def add_in(
        self, s: AsyncSession, kind: str, payload: dict[str, Any], *, dedupe_key: str,
        max_attempts: int = 10,
    ) -> None:  # fmt: skip
        """Add a job, due now, whose ``dedupe_key`` must be new: a second one fails the
        caller's transaction (IntegrityError) where :meth:`enqueue_in` adds nothing."""
        _check(kind, (dedupe_key,))
        now = self.clock.now()
        s.add(Job(**_row(kind, payload, dedupe_key, now, max_attempts, now)))

    def _insert(self) -> PgInsert | SqliteInsert:
        """INSERT on the jobs table in the dialect that knows ON CONFLICT DO NOTHING."""
        return (pg_insert if self.db.is_postgres else sqlite_insert)(Job)

    async def enqueue(self, kind: str, payload: dict[str, Any], **options: Any) -> bool:
        async with self.db.transaction() as s:
            return await self.enqueue_in(s, kind, payload, **options)

    # ------------------------------------------------------------------ taking

    async def claim(
        self, kinds: Sequence[str], *, limit: int = 10, lease_s: float = 60.0
    ) -> list[Job]:
        """Claim up to ``limit`` due jobs of these kinds for ``lease_s`` seconds, the
        earliest ``run_at`` first."""
        async with self.db.transaction() as s:
            return await self.claim_in(s, kinds, limit=limit, lease_s=lease_s)

    async def claim_in(
        self, s: AsyncSession, kinds: Sequence[str], *, limit: int = 10, lease_s: float = 60.0
    ) -> list[Job]:
        """:meth:`claim` in the caller's transaction: a batch worker starts its work on
        the jobs in the same transaction (the claims commit with that work or not at
        all), and needs no second transaction to check it still holds them."""
        now = self.clock.now()
        # Two queries, each walking the (status, run_at) index in order and stopping at
        # ``limit``: one query with an OR of both, ordered by (run_at, id), made SQLite
        # and PostgreSQL read and sort every due job to return a few — with 100,000
        # rows queued, 30-40 ms per claim. Ties in run_at come in index order
        # (insertion order in practice). On PostgreSQL, rows locked by one query and
        # not claimed stay locked only until the transaction ends.
        queued = (Job.status == JobStatus.queued.value) & (Job.run_at <= now)
        expired = (Job.status == JobStatus.running.value) & (Job.locked_until < now)
        queries = [
            select(Job).where(Job.kind.in_(list(kinds)), due).order_by(Job.run_at).limit(limit)
            for due in (expired, queued)
        ]
        if self.db.is_postgres:
            queries = [q.with_for_update(skip_locked=True) for q in queries]
        found = [job for q in queries for job in await s.scalars(q)]
        jobs = sorted(found, key=lambda job: (job.run_at, job.id))[:limit]
        if not jobs:
            return []
        for job in jobs:  # queued ones start; expired running ones stay running
            if job.status == JobStatus.queued.value:
                JOB.check(job.status, JobStatus.running)
        # One token per claim: a worker that re-claims its own expired job must not be
        # mistaken for the earlier claim still running in the same process. The jobs of
        # one claim share it (a job's claim is its id and the token) so that one UPDATE
        # takes them all, instead of an ORM flush writing each row.
        locked_by = f"{self.worker_id}/{secrets.token_hex(4)}"
        locked_until = now + timedelta(seconds=lease_s)
        jobs_t = table(Job)
        await s.execute(
            update(jobs_t)
            .where(jobs_t.c.id.in_([job.id for job in jobs]))
            .values(
                status=JobStatus.running.value,
                locked_by=locked_by,
                locked_until=locked_until,
                attempts=jobs_t.c.attempts + 1,
            )
        )
        for job in jobs:  # what the UPDATE stored, without marking the objects dirty
            set_committed_value(job, "status", JobStatus.running.value)
            set_committed_value(job, "locked_by", locked_by)
            set_committed_value(job, "locked_until", locked_until)
            set_committed_value(job, "attempts", job.attempts + 1)
        return jobs

    async def extend(self, claim: Job, lease_s: float) -> bool:
        """Keep a long job's claim alive; False if the claim was lost."""
        async with self.db.transaction() as s:
            result = await s.execute(
                update(Job)
                .where(
                    Job.id == claim.id,
                    Job.locked_by == claim.locked_by,
                    Job.status == JobStatus.running.value,
                )
                .values(locked_until=self.clock.now() + timedelta(seconds=lease_s))
            )
        return bool(getattr(result, "rowcount", 0))

    # ------------------------------------------------------------------ ending

    async def complete(self, claim: Job) -> bool:
        return await self._finish(claim, JobStatus.done, error=None)

    async def fail(self, claim: Job, error: str, *, retry_in_s: float = 60.0) -> JobStatus | None:
        """Re-queue after ``retry_in_s`` (or ``dead`` when attempts are used up).
        ``error`` is stored: it must hold no card data (callers pass error ids)."""
        async with self.db.transaction() as s:
            job = await s.get(Job, claim.id, with_for_update=True)
            if not self._mine(job, claim):
                return None
            assert job is not None
            target = JobStatus.dead if job.attempts >= job.max_attempts else JobStatus.queued
            self._end(job, target, error[:500])
            if target is JobStatus.queued:
                job.run_at = self.clock.now() + timedelta(seconds=retry_in_s)
            return target

    async def defer(
        self, claim: Job, run_at: datetime, payload: dict[str, Any] | None = None
    ) -> bool:
        """Put a claimed job back to wait until ``run_at`` (a planned next step, not a
        failure: its attempt count starts again), optionally with a new payload."""
        async with self.db.transaction() as s:
            job = await s.get(Job, claim.id, with_for_update=True)
            if not self._mine(job, claim):
                return False
            assert job is not None
            self._end(job, JobStatus.queued, None)
            job.run_at = run_at
            job.attempts = 0
            if payload is not None:
                job.payload = payload
            return True

    async def save_payload_in(self, s: AsyncSession, claim: Job, payload: dict[str, Any]) -> bool:
        """Record a claimed job's progress in the caller's transaction (so an effect and
        the note that it happened commit together)."""
        job = await s.get(Job, claim.id, with_for_update=True)
        if not self._mine(job, claim):
            return False
        assert job is not None
        job.payload = payload
        return True

    async def held_in(self, s: AsyncSession, claims: Sequence[Job]) -> dict[int, Job]:
        """The stored rows of ``claims`` still held by those very claims, locked in the
        caller's transaction with one query (batch work: note progress or finish many
        jobs in one transaction with :meth:`complete_in`)."""
        if not claims:
            return {}
        by_id = {c.id: c for c in claims}
        rows = await s.scalars(select(Job).where(Job.id.in_(list(by_id))).with_for_update())
        return {job.id: job for job in rows if self._mine(job, by_id[job.id])}

    def complete_in(self, job: Job) -> None:
        """Mark a row returned by :meth:`held_in` done (committed with the caller's
        transaction)."""
        self._end(job, JobStatus.done, None)

    def defer_in(self, job: Job, run_at: datetime) -> None:
        """:meth:`defer` for a row returned by :meth:`held_in`."""
        self._end(job, JobStatus.queued, None)
        job.run_at = run_at
        job.attempts = 0

    # -- many claims at once, in the caller's transaction, without ORM objects (bulk)

    async def held_ids_in(self, s: AsyncSession, claims: Sequence[Job]) -> set[int]:
        """The ids of ``claims`` whose rows are still held by those very claims, locked
        in the caller's transaction (:meth:`held_in` without loading the rows)."""
        if not claims:
            return set()
        by_id = {c.id: c.locked_by for c in claims}
        jobs_t = table(Job)
        query = select(jobs_t.c.id, jobs_t.c.locked_by).where(
            jobs_t.c.id.in_(list(by_id)), jobs_t.c.status == JobStatus.running.value
        )
        if self.db.is_postgres:
            query = query.with_for_update()
        rows = await s.execute(query)
        return {i for i, locked_by in rows if locked_by is not None and locked_by == by_id[i]}

    async def save_payloads_in(
        self, s: AsyncSession, payloads: Mapping[int, dict[str, Any]]
    ) -> None:
        """New payloads for jobs the caller holds (checked with :meth:`held_ids_in` in
        this transaction): one statement for all."""
        if payloads:
            jobs_t = table(Job)
            await s.execute(
                update(jobs_t)
                .where(jobs_t.c.id == bindparam("job_id"))
                .values(payload=bindparam("new_payload")),
                [{"job_id": i, "new_payload": p} for i, p in payloads.items()],
            )

    async def complete_many_in(
        self, s: AsyncSession, payloads: Mapping[int, dict[str, Any]]
    ) -> None:
        """:meth:`complete_in` for jobs the caller holds (see :meth:`save_payloads_in`),
        each with its final payload."""
        if payloads:
            JOB.check(JobStatus.running, JobStatus.done)
            jobs_t = table(Job)
            await s.execute(
                update(jobs_t)
                .where(jobs_t.c.id == bindparam("job_id"))
                .values(
                    payload=bindparam("new_payload"),
                    status=JobStatus.done.value,
                    locked_by=None,
                    locked_until=None,
                    last_error=None,
                    finished_at=self.clock.now(),
                ),
                [{"job_id": i, "new_payload": p} for i, p in payloads.items()],
            )

    async def defer_many_in(self, s: AsyncSession, ids: Sequence[int], run_at: datetime) -> None:
        """:meth:`defer_in` for jobs the caller holds (see :meth:`save_payloads_in`)."""
        if ids:
            JOB.check(JobStatus.running, JobStatus.queued)
            jobs_t = table(Job)
            await s.execute(
                update(jobs_t)
                .where(jobs_t.c.id.in_(list(ids)))
                .values(
                    status=JobStatus.queued.value,
                    locked_by=None,
                    locked_until=None,
                    last_error=None,
                    run_at=run_at,
                    attempts=0,
                )
            )

    async def _finish(self, claim: Job, target: JobStatus, *, error: str | None) -> bool:
        async with self.db.transaction() as s:
            job = await s.get(Job, claim.id, with_for_update=True)
            if not self._mine(job, claim):
                return False
            assert job is not None
            self._end(job, target, error)
            return True

    @staticmethod
    def _mine(job: Job | None, claim: Job) -> bool:
        """Is the stored job still held by this very claim?"""
        return (
            job is not None
            and job.status == JobStatus.running.value
            and claim.locked_by is not None
            and job.locked_by == claim.locked_by
        )

    def _end(self, job: Job, target: JobStatus, error: str | None) -> None:
        job.status = JOB.check(job.status, target).value
        job.locked_by = None
        job.locked_until = None
        job.last_error = error
        if target in (JobStatus.done, JobStatus.dead):
            job.finished_at = self.clock.now()

    async def counts(self, kind: str | None = None) -> dict[str, int]:
        """Jobs per status (for progress and monitoring)."""
        from sqlalchemy import func

        q = select(Job.status, func.count()).group_by(Job.status)
        if kind is not None:
            q = q.where(Job.kind == kind)
        async with self.db.sessions() as s:
            return {status: n for status, n in (await s.execute(q)).all()}


def _check(kind: str, dedupe_keys: Sequence[str]) -> None:
    if not kind or len(kind) > 40:
        raise InvalidInput("job kind must be 1-40 characters")
    if any(not 1 <= len(key) <= 120 for key in dedupe_keys):
        raise InvalidInput("dedupe_key must be 1-120 characters")


def _row(
    kind: str,
    payload: dict[str, Any],
    dedupe_key: str | None,
    run_at: datetime,
    max_attempts: int,
    now: datetime,
) -> dict[str, Any]:
    """A new job's column values: queued, never tried."""
    return {
        "kind": kind,
        "dedupe_key": dedupe_key,
        "payload": payload,
        "status": JOB.initial.value,
        "run_at": run_at,
        "attempts": 0,
        "max_attempts": max_attempts,
        "created_at": now,
    }
