"""The bulk registration worker: turns the rows of bulk ``registrations`` jobs into
registration call requests (:func:`~ivr.bulk.registrations.register_row`), exactly once.

A worker of its own, apart from the charges: a row here is a leased number and an SMS,
not a PG request, so it has no rate limit and no batch to settle. The rows of a claim
are processed one by one in file order: the first row with a new ``external_ref``
creates that customer, the rows after it find it.
"""

from __future__ import annotations

import logging

from ivr.bulk.completion import Completion
from ivr.bulk.jobs import REGISTER
from ivr.bulk.registrations import register_row
from ivr.clock import Clock
from ivr.errors import ArspayError, PoolExhausted
from ivr.jobs.pacing import Pacer
from ivr.jobs.queue import JobQueue
from ivr.merchants.service import CustomerService
from ivr.requests.service import CallRequestService
from ivr.store.db import Database
from ivr.store.tables import Job

log = logging.getLogger(__name__)


class RegistrationWorker:
    def __init__(self, db: Database, clock: Clock, queue: JobQueue, customers: CustomerService,
                 requests: CallRequestService, *, batch: int = 16, lease_s: float = 120.0,
                 ) -> None:  # fmt: skip
        """``batch``: rows claimed at once (each held for ``lease_s``)."""
        self.db, self.queue, self.customers, self.requests = db, queue, customers, requests
        self.batch, self.lease_s = batch, lease_s
        self.completion = Completion(db, clock)
        self.pacer = Pacer()
        db.on_commit([Job.__tablename__], lambda: self.pacer.wake())  # a new bulk's rows

    async def run_once(self) -> int:
        """Claim one batch of rows and process it; returns how many."""
        jobs = await self.queue.claim([REGISTER], limit=self.batch, lease_s=self.lease_s)
        for job in sorted(jobs, key=lambda j: int(j.payload["row"])):  # in file order
            await self._register(job)
        if jobs:
            await self.completion.finish({j.payload["bulk_id"] for j in jobs})
        return len(jobs)

    async def run(
        self, *, poll_s: float = 1.0, idle_poll_s: float = 5.0, until_idle: bool = False
    ) -> None:
        """Process rows until cancelled (``until_idle``: until none is claimable). With
        nothing to do it looks again after ``poll_s``, backing off to ``idle_poll_s``,
        or at once when a transaction of this process adds jobs (:class:`Pacer`). A
        batch that fails is logged; its rows' claims lapse and they are taken up again."""
        self.pacer = Pacer(poll_s, max(poll_s, idle_poll_s))
        while True:
            try:
                if await self.run_once():
                    continue
            except Exception:
                log.exception("bulk registrations failed")
            if until_idle:
                return
            await self.pacer.wait(found_work=False)

    async def _register(self, job: Job) -> None:
        payload = dict(job.payload)
        try:
            payload |= await register_row(
                self.db, self.customers, self.requests, payload,
                actor=f"bulk:{payload['bulk_id']}",
            )  # fmt: skip
        except PoolExhausted:  # every number is leased to this mobile now: try later
            await self.queue.fail(job, "did-pool-exhausted", retry_in_s=300)
            return
        except ArspayError as exc:
            payload["result"], payload["error"] = "invalid", exc.message
        async with self.db.transaction() as s:
            held = await self.queue.held_in(s, [job])
            if job.id in held:
                held[job.id].payload = payload
                self.queue.complete_in(held[job.id])
