"""One engine process of the bulk crash test: process bulk charge rows until none are
left, then print ``done``. A killed predecessor's claims are taken over once their
lease (``LEASE_S``) runs out.

Usage: python -m tests.billing.bulk_worker DB_URL SANDBOX_URL WORKER_ID CONCURRENCY
"""

from __future__ import annotations

import asyncio
import sys

from ivr.bulk.charges import ChargeWorker
from ivr.bulk.progress import BulkJobs
from ivr.clock import SystemClock
from ivr.jobs.queue import JobQueue
from ivr.payments.charger import ChargePolicy, Charger
from ivr.payments.service import PaymentService
from ivr.store.db import Database
from tests.gateways.support import connector


async def main(url: str, sandbox: str, worker: str, concurrency: int) -> None:
    db = Database(url, pool_size=concurrency + 2)
    clock = SystemClock()
    async with connector(sandbox, timeout_s=2.0) as pg:
        charger = Charger(db, clock, pg, ChargePolicy(blind_backoff_s=0.05, settle_s=2.0))
        bulk = ChargeWorker(db, clock, JobQueue(db, clock, worker_id=worker),
                            PaymentService(db, clock, pg), charger, rate_per_s=5000,
                            concurrency=concurrency, lease_s=5.0)  # fmt: skip
        print("started", flush=True)
        # rows still claimed by a dead worker come back after their lease
        while await BulkJobs(db).pending_rows():
            await bulk.run(poll_s=0.2, until_idle=True)
            await asyncio.sleep(0.5)
    await db.close()
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
