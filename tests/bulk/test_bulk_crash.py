"""Issue #8 acceptance: a bulk job of 10,000 charges, the engine SIGKILLed mid-job and
restarted -> exactly one charge per row at the sandbox ledger (a separate process, with
injected 5xx and timeouts-after-recording)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ivr.bulk.results import BulkResults
from ivr.store import migrate
from ivr.store.db import Database
from ivr.store.tables import PaymentAttempt, PaymentIntent
from tests.bulk.bulk_worker import start_worker, submit_charges
from tests.payments.support import start_sandbox

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(1200)]

ROWS = int(os.environ.get("ARSPAY_BULK_CRASH_ROWS", "10000"))
CARDS = 50


async def processed(db: Database) -> int:
    async with db.sessions() as s:
        n = await s.scalar(
            select(func.count())
            .select_from(PaymentIntent)
            .where(PaymentIntent.status.in_(["succeeded", "failed"]))
        )
    return int(n or 0)


async def test_sigkill_mid_bulk_job_charges_each_row_once(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}"
    db = Database(db_url)
    await migrate.upgrade(db)
    ledger = tmp_path / "ledger.db"
    sandbox, url = start_sandbox(ledger)
    started = time.monotonic()
    try:
        mid, sub = await submit_charges(db, url, ROWS, CARDS, refs=True)
        assert sub.valid == ROWS

        kills = []
        for n, threshold in enumerate((ROWS // 5, ROWS // 2)):
            worker = start_worker(db_url, url, f"w{n}")
            deadline = time.monotonic() + 600
            while await processed(db) < threshold:
                assert worker.poll() is None, "worker ended before it was killed"
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            worker.send_signal(signal.SIGKILL)
            worker.communicate()
            kills.append(await processed(db))
        worker = start_worker(db_url, url, "last")
        out, _ = await asyncio.to_thread(worker.communicate, timeout=1200)
        assert worker.returncode == 0
        assert out.strip().endswith("done")
    finally:
        sandbox.send_signal(signal.SIGTERM)
        sandbox.communicate(timeout=30)
    print(f"\nbulk crash test: {ROWS} rows, kills at {kills}, {time.monotonic() - started:.0f} s")

    async with db.sessions() as s:
        intents = list(await s.scalars(select(PaymentIntent)))
        attempts = list(await s.scalars(select(PaymentAttempt)))
    results = await BulkResults(db).rows(mid, sub.bulk_id)
    await db.close()
    assert len(intents) == ROWS  # one intent per row, none created twice
    assert {i.status for i in intents} <= {"succeeded", "failed"}
    assert len(results) == ROWS
    assert {r["result"] for r in results} <= {"succeeded", "failed"}
    succeeded = {a.order_id for a in attempts if a.status == "succeeded"}
    per_intent: dict[str, int] = {}
    for a in attempts:
        if a.status == "succeeded":
            per_intent[a.intent_id] = per_intent.get(a.intent_id, 0) + 1
    assert max(per_intent.values()) == 1
    # the PG's own ledger: exactly the orders we recorded as paid, each charged once
    with sqlite3.connect(ledger) as pgdb:
        paid = {r[0] for r in pgdb.execute("SELECT merchant_uid FROM payments WHERE status='paid'")}
    assert paid == succeeded
    paid_intents = {a.intent_id for a in attempts if a.order_id in paid}
    assert len(paid_intents) == len(paid)  # no intent paid under two order ids
