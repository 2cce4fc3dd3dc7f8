"""Issue #8 acceptance: two engine processes on one PostgreSQL process 10,000 due
charges (a bulk job's rows): every row charged exactly once, and both did work."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ivr.bulk.jobs import CHARGE
from ivr.store.db import Database
from ivr.store.tables import Job, PaymentAttempt, PaymentIntent
from tests.bulk.bulk_worker import start_worker, submit_charges
from tests.payments.support import start_sandbox

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]

ROWS = int(os.environ.get("ARSPAY_TWO_NODE_ROWS", "10000"))


async def test_two_nodes_on_postgres_share_the_work_without_duplicates(
    pg_factory: object, tmp_path: Path
) -> None:
    db_url: str = await pg_factory.new()  # type: ignore[attr-defined]
    db = Database(db_url)
    sandbox, url = start_sandbox(tmp_path / "ledger.db")
    started = time.monotonic()
    try:
        await submit_charges(db, url, ROWS, 50)
        workers = [start_worker(db_url, url, name) for name in ("node-a", "node-b")]
        outs = [await asyncio.to_thread(w.communicate, timeout=1200) for w in workers]
        assert [w.returncode for w in workers] == [0, 0], outs
    finally:
        sandbox.send_signal(signal.SIGTERM)
        sandbox.communicate(timeout=30)
    print(f"\ntwo nodes: {ROWS} rows in {time.monotonic() - started:.0f} s")
    async with db.sessions() as s:
        intents = await s.scalar(select(func.count()).select_from(PaymentIntent))
        paid = list(
            await s.scalars(
                select(PaymentAttempt.intent_id).where(PaymentAttempt.status == "succeeded")
            )
        )
        done = list(await s.scalars(select(Job).where(Job.kind == CHARGE)))
    await db.close()
    assert intents == ROWS
    assert len(paid) == len(set(paid))  # no intent charged twice
    by_worker = Counter(j.payload.get("worker") for j in done)
    assert set(by_worker) == {"node-a", "node-b"}, by_worker  # both did work
    assert sum(by_worker.values()) == ROWS
