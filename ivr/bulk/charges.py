"""The bulk charge worker (docs/product.md §8): charges the rows of bulk ``charges`` jobs,
concurrently within the PG's rate limit, exactly once per row.

Rows are processed in batches (:class:`~ivr.payments.batch.ChargeBatch`, through
:class:`~ivr.bulk.charge_steps.ChargeSteps`): one transaction claims a batch of rows and
opens their intents, first attempts and job notes, the PG requests go out concurrently
(paced to the rate limit), and one transaction records the answers and finishes the
jobs — two transactions per batch instead of several per row. :meth:`ChargeWorker.run`
keeps ``concurrency`` rows in flight and sizes the batches to the load (see there).
Rows that already have an intent (a crash, an unknown outcome) take the one-by-one
path, :meth:`ChargeSteps.drive`. When a job's last row is done,
:class:`~ivr.bulk.completion.Completion` ends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from ivr.bulk.charge_steps import ChargeSteps, Claimed, fresh
from ivr.bulk.completion import Completion
from ivr.bulk.flow import Answered, Flow
from ivr.bulk.pacing import RateLimit
from ivr.clock import Clock
from ivr.jobs.pacing import Pacer
from ivr.jobs.queue import JobQueue
from ivr.payments.batch import Answer, ChargeBatch, Opened
from ivr.payments.charger import Charger
from ivr.payments.service import PaymentService
from ivr.store.db import Database
from ivr.store.tables import Job

log = logging.getLogger(__name__)


class ChargeWorker:
    def __init__(self, db: Database, clock: Clock, queue: JobQueue, payments: PaymentService,
                 charger: Charger, *, rate_per_s: float = 50.0, concurrency: int = 16,
                 lease_s: float = 120.0) -> None:  # fmt: skip
        """``concurrency``: rows in flight at once (sent, or waiting to be);
        ``rate_per_s``: new charge requests started per second at most; ``lease_s``: how
        long a claimed row is this worker's before another takes it over."""
        self.queue, self.concurrency = queue, concurrency
        batch = ChargeBatch(clock, charger.gateway, payments, charger.policy)
        rate = RateLimit(rate_per_s)
        self.steps = ChargeSteps(db, clock, queue, charger, batch, rate, lease_s=lease_s)
        self.completion = Completion(db, clock)
        self.pacer = Pacer()
        db.on_commit([Job.__tablename__], lambda: self.pacer.wake())  # a new bulk's rows

    async def run_once(self) -> int:
        """Claim one batch of rows and process it; returns how many."""
        claimed = await self.steps.claim_and_open(self.concurrency)
        if claimed.jobs:
            await asyncio.gather(
                self._send_and_settle(claimed),
                *(self.steps.drive(j) for j in claimed.jobs if not fresh(j)),
            )
            await self.completion.finish({j.payload["bulk_id"] for j in claimed.jobs})
        return len(claimed.jobs)

    async def _send_and_settle(self, claimed: Claimed) -> None:
        """Steps 2 and 3 of one batch (:meth:`run_once`): the requests go out, then
        :meth:`ChargeSteps.settle`."""
        if claimed.opened:
            answers = await asyncio.gather(*(self.steps.send(o) for o in claimed.opened.values()))
            held = [j for j in claimed.jobs if j.id in claimed.opened]
            await self.steps.settle(held, answers, claimed.notes)

    async def run(
        self, *, poll_s: float = 1.0, idle_poll_s: float = 5.0, until_idle: bool = False
    ) -> None:
        """Process rows until cancelled, keeping ``concurrency`` rows in flight.
        ``until_idle``: return when no row is claimable (tests, ``--here``). With nothing
        to do it looks again after ``poll_s``, backing off to ``idle_poll_s``, or at
        once when a transaction of this process adds jobs (:class:`Pacer`).

        One loop owns the writes (SQLite has one writer): each turn settles, in one
        transaction, every answer that came back since the last turn, then claims
        and opens as many new rows as there is room for, in another. Batches size
        themselves: the busier the writer, the more answers wait for the next turn
        and the fewer transactions per row. The requests run as tasks in between, so
        no batch waits for its slowest request."""
        self.pacer = Pacer(poll_s, max(poll_s, idle_poll_s))
        flow = Flow()
        touched: set[str] = set()  # bulk jobs worked on since the last finish check
        async with asyncio.TaskGroup() as tg:
            while True:
                if flow.answers:
                    await self._settle_answers(flow.take_answers())
                room = self.concurrency - flow.in_flight
                jobs = await self._claim_more(tg, flow, room) if room else []
                touched |= {j.payload["bulk_id"] for j in jobs}
                idle = not (flow.in_flight or flow.answers)
                if len(jobs) < room and idle and touched:
                    # The queue is draining and every row taken is done: are those
                    # bulk jobs finished? (Counting a job's rows costs a scan, so not
                    # after every turn.)
                    try:
                        await self.completion.finish(touched)
                        touched.clear()
                    except Exception:
                        log.exception("bulk finish check failed")
                if not idle:
                    await flow.wait(poll_s)
                elif until_idle and not jobs:
                    return
                elif not jobs:
                    await self.pacer.wait(found_work=False)

    async def _claim_more(self, tg: asyncio.TaskGroup, flow: Flow, room: int) -> list[Job]:
        """Claim and open up to ``room`` rows and start them: each new charge's request
        (its answer goes to ``flow``), each row that already has an intent one by one."""
        try:
            claimed = await self.steps.claim_and_open_or_claim(room)
        except Exception:
            log.exception("bulk claim failed")
            return []
        by_id = {j.id: j for j in claimed.jobs}
        for job_id, o in claimed.opened.items():
            flow.start(tg, self._answer(by_id[job_id], o, claimed.notes[job_id]))
        for job in claimed.jobs:
            if not fresh(job):
                flow.start(tg, _logged(self.steps.drive(job)))
        return claimed.jobs

    async def _answer(self, job: Job, o: Opened, note: dict[str, Any]) -> Answered:
        """One new charge's request (paced); an unexpected error makes its outcome
        unknown (it is looked up, never sent again)."""
        try:
            return job, await self.steps.send(o), note
        except Exception:
            log.exception("bulk charge request failed")
            return job, Answer(o, None), note

    async def _settle_answers(self, answered: Sequence[Answered]) -> None:
        """Step 3 for answers of many batches at once. If the transaction fails, the
        attempts stay ``pending`` and their rows' claims lapse: the rows are taken up
        again and the orders looked up, never charged again."""
        try:
            await self.steps.settle(
                [job for job, _, _ in answered],
                [answer for _, answer, _ in answered],
                {job.id: note for job, _, note in answered},
            )
        except Exception:
            log.exception("bulk settle failed")


async def _logged(work: Awaitable[None]) -> None:
    """One-by-one work of the loop: an error is logged; the row's claim lapses and it is
    taken up again."""
    try:
        await work
    except Exception:
        log.exception("bulk row failed")
