"""One engine process of the bulk crash and two-node tests: process bulk charge rows
until none are left, then print ``done``. A killed predecessor's claims are taken over
once their lease (``LEASE_S``) runs out. Also those tests' setup: :func:`submit_charges`,
:func:`start_worker`.

Usage: python -m tests.bulk.bulk_worker DB_URL SANDBOX_URL WORKER_ID CONCURRENCY
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from ivr.bulk.charges import ChargeWorker
from ivr.bulk.progress import BulkJobs
from ivr.bulk.submit import BulkSubmissions, Submitted
from ivr.clock import SystemClock
from ivr.gateways.errors import GatewayError
from ivr.jobs.queue import JobQueue
from ivr.payments.charger import ChargePolicy, Charger
from ivr.payments.service import PaymentService
from ivr.store.db import Database
from tests.gateways.support import connector, luhn_complete
from tests.payments.support import merchant_with_cards

REPO = Path(__file__).resolve().parents[2]


def start_worker(db_url: str, sandbox: str, name: str) -> subprocess.Popen[str]:
    """This module as an engine process of its own (32 rows in flight)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.bulk.bulk_worker", db_url, sandbox, name, "32"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


async def submit_charges(
    db: Database, sandbox: str, rows: int, cards: int, *, refs: bool = False
) -> tuple[str, Submitted]:
    """A merchant with ``cards`` cards registered at the sandbox (retried: it injects
    faults) and a bulk job of ``rows`` charges of them in turn; ``refs``: rows have a
    ``ref``. Returns the merchant id and the submission."""
    numbers = [luhn_complete(f"411111{i:09d}") for i in range(cards)]
    async with connector(sandbox, timeout_s=3.0) as pg:
        for _ in range(20):
            try:
                mid, card_ids = await merchant_with_cards(db, pg, numbers)
                break
            except GatewayError:
                continue
    data = [{"card_id": card_ids[numbers[i % cards]], "amount": 1000 + i,
             "order_name": f"회비 {i}"} | ({"ref": f"r{i}"} if refs else {})
            for i in range(rows)]  # fmt: skip
    clock = SystemClock()
    submissions = BulkSubmissions(db, clock, JobQueue(db, clock, worker_id="submit"))
    return mid, await submissions.submit(mid, json.dumps(data).encode(), "json", actor="test")


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
