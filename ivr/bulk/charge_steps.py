"""The steps that charge bulk rows, each a transaction (or a PG request) of its own;
:class:`~ivr.bulk.charges.ChargeWorker` decides when each runs.

New rows go through the three steps of a :class:`~ivr.payments.batch.ChargeBatch`:
:meth:`ChargeSteps.claim_and_open` claims a batch of rows and opens their intents,
first attempts and job notes in one transaction (an intent is created in the same
transaction that records its id in the row's payload, and only while the row is still
this worker's claim); :meth:`ChargeSteps.send` sends one request, paced to the PG's
rate limit; :meth:`ChargeSteps.settle` records many answers and ends their rows in one
transaction. Rows that already have an intent (a crash, an unknown outcome) take the
one-by-one path, :meth:`ChargeSteps.drive`, which looks open attempts up first. So a
worker killed at any point leaves either no intent (the row is redone) or a recorded
one (it is driven, never re-created): one charge per row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ivr.bulk.jobs import CHARGE
from ivr.bulk.pacing import RateLimit
from ivr.clock import Clock
from ivr.domain.states import PaymentIntentStatus
from ivr.errors import ArspayError
from ivr.jobs.queue import JobQueue
from ivr.payments.batch import Answer, ChargeBatch, NewCharge, Opened
from ivr.payments.charger import Charger
from ivr.store.db import Database
from ivr.store.tables import Job

log = logging.getLogger(__name__)

Notes = dict[int, dict[str, Any]]  # job id -> its payload with the intent id


@dataclass
class Claimed:
    """Rows claimed for this worker, and the new charges among them opened."""

    jobs: list[Job] = field(default_factory=list)
    opened: dict[int, Opened] = field(default_factory=dict)  # job id -> its opened charge
    notes: Notes = field(default_factory=dict)


def fresh(job: Job) -> bool:
    """A charge row with no intent yet (its first try, or a crash before it had one)."""
    return job.payload.get("intent_id") is None


class ChargeSteps:
    def __init__(self, db: Database, clock: Clock, queue: JobQueue, charger: Charger,
                 batch: ChargeBatch, rate: RateLimit, *, lease_s: float) -> None:  # fmt: skip
        """``batch`` opens, sends and settles new charges; ``charger`` drives the others;
        ``lease_s``: how long a claimed row is this worker's."""
        self.db, self.clock, self.queue, self.charger = db, clock, queue, charger
        self.batch, self.rate, self.lease_s = batch, rate, lease_s

    async def claim_and_open(self, size: int) -> Claimed:
        """Claim up to ``size`` rows and open the new charges among them (step 1) in one
        transaction: the claims commit with the intents, and no second transaction has
        to check they are still held."""
        async with self.db.transaction() as s:
            jobs = await self.queue.claim_in(s, [CHARGE], limit=size, lease_s=self.lease_s)
            return await self._open_in(s, jobs)

    async def claim_and_open_or_claim(self, size: int) -> Claimed:
        """:meth:`claim_and_open`; if that transaction fails, the rows are claimed on
        their own and opened in a second one: a batch that cannot be opened keeps its
        claims until they lapse instead of coming back at once and stalling the rows
        behind it. (Rows not opened are left to their claims' lapse.)"""
        try:
            return await self.claim_and_open(size)
        except Exception:
            log.exception("bulk batch failed to open: claiming it on its own")
        jobs = await self.queue.claim([CHARGE], limit=size, lease_s=self.lease_s)
        try:
            async with self.db.transaction() as s:  # for the rows still held
                held = await self.queue.held_ids_in(s, [j for j in jobs if fresh(j)])
                claimed = await self._open_in(s, [j for j in jobs if j.id in held])
        except Exception:
            log.exception("bulk batch failed to open")
            claimed = Claimed()
        claimed.jobs = jobs
        return claimed

    async def _open_in(self, s: AsyncSession, jobs: Sequence[Job]) -> Claimed:
        """Step 1 for the new charge rows among ``jobs``, which this transaction holds.
        Refused rows (card not found / deleted) end ``invalid``."""
        claimed = Claimed(list(jobs))
        new = [j for j in jobs if fresh(j)]
        refused: Notes = {}
        results = await self.batch.open_in(s, [
            NewCharge(p["merchant_id"], p["card_id"], p["amount"], p["order_name"],
                      p["installment_months"], "bulk", f"bulk:{p['bulk_id']}")
            for p in (j.payload for j in new)
        ])  # fmt: skip
        for job, result in zip(new, results, strict=True):
            if isinstance(result, ArspayError):
                refused[job.id] = job.payload | {"result": "invalid", "error": result.message}
            else:
                claimed.opened[job.id] = result
                claimed.notes[job.id] = job.payload | {"intent_id": result.intent_id}
        await self.queue.save_payloads_in(s, claimed.notes)
        await self.queue.complete_many_in(s, refused)
        return claimed

    async def send(self, opened: Opened) -> Answer:
        """Step 2: one new charge's request, started within the rate limit."""
        await self.rate.wait()
        return await self.batch.send(opened)

    async def settle(self, jobs: Sequence[Job], answers: Sequence[Answer], notes: Notes) -> None:
        """Step 3: one transaction records the answers and ends the jobs still held (an
        unknown outcome defers its job to the one-by-one path, which looks the order
        up). ``jobs[i]`` is the row of ``answers[i]``."""
        async with self.db.transaction() as s:
            statuses = await self.batch.settle_in(s, answers)
            held = await self.queue.held_ids_in(s, jobs)
            done: Notes = {}
            later: list[int] = []
            for job, answer in zip(jobs, answers, strict=True):
                if job.id not in held:
                    continue  # its new owner drives the intent and records the result
                status = statuses[answer.opened.intent_id]
                if status in (PaymentIntentStatus.succeeded, PaymentIntentStatus.failed):
                    # who finished it: monitoring
                    done[job.id] = notes[job.id] | {
                        "result": status.value,
                        "worker": self.queue.worker_id,
                    }
                else:  # unknown outcome: looked up by the one-by-one path
                    later.append(job.id)
            await self.queue.complete_many_in(s, done)
            await self.queue.defer_many_in(s, later, self.clock.now())

    async def drive(self, job: Job) -> None:
        """The one-by-one path, for a row that already has an intent: the charging
        engine drives it (looking an open attempt up first); the row ends with the
        intent's end state, or comes back at the recheck while it is still open."""
        payload = dict(job.payload)
        try:
            status = await self.charger.drive(payload["intent_id"])
            if status in (PaymentIntentStatus.created, PaymentIntentStatus.processing):
                recheck = timedelta(seconds=self.charger.policy.recheck_s)
                await self.queue.defer(job, self.clock.now() + recheck, payload)
                return
            payload["result"] = status.value
            payload["worker"] = self.queue.worker_id  # who finished it (monitoring)
        except ArspayError as exc:  # e.g. card not found / deleted: the row's result
            payload["result"] = "invalid"
            payload["error"] = exc.message
        async with self.db.transaction() as s:
            if not await self.queue.save_payload_in(s, job, payload):
                return
        await self.queue.complete(job)
