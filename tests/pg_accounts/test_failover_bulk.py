"""Issue #27 goal: the primary PG process SIGKILLed during a 10,000-row bulk run, then
brought back. Cards whose keys live at the primary wait (its breaker opens: nothing is
sent) and resume there with the same order id; cards at the secondary keep being
charged meanwhile. Every row is charged exactly once across the two PGs' ledgers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from ivr.bulk.charges import ChargeWorker
from ivr.bulk.progress import BulkJobs
from ivr.bulk.submit import BulkSubmissions
from ivr.clock import SystemClock
from ivr.gateways.config import GatewaySettings
from ivr.jobs.queue import JobQueue
from ivr.payments.charger import ChargePolicy, Charger
from ivr.payments.service import PaymentService
from ivr.pg_accounts.book import GatewayBook
from ivr.pg_accounts.store import PgAccounts, accounts_key
from ivr.store import migrate
from ivr.store.db import Database
from ivr.store.tables import Card, PaymentAttempt, PaymentIntent
from tests.gateways.support import KEY, SECRET, connector, luhn_complete
from tests.payments.support import merchant_with_cards, start_sandbox

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(900)]

ROWS = int(os.environ.get("ARSPAY_FAILOVER_ROWS", "10000"))
CARDS = 40  # half at the primary, half at the secondary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def finished(db: Database) -> int:
    async with db.sessions() as s:
        n = await s.scalar(
            select(func.count())
            .select_from(PaymentIntent)
            .where(PaymentIntent.status.in_(["succeeded", "failed"]))
        )
    return int(n or 0)


def paid(ledger: Path) -> list[str]:
    with sqlite3.connect(ledger) as pg:
        return [r[0] for r in pg.execute("SELECT merchant_uid FROM payments WHERE status='paid'")]


def stop(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=30)


async def test_primary_pg_killed_mid_bulk_run(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}", pool_size=40)
    await migrate.upgrade(db)
    ledger_a, ledger_b = tmp_path / "primary.db", tmp_path / "secondary.db"
    port_a = free_port()
    faults = ""  # the kill is the fault here
    primary, url_a = start_sandbox(ledger_a, faults=faults, port=port_a)
    secondary, url_b = start_sandbox(ledger_b, faults=faults)
    clock = SystemClock()
    base = GatewaySettings(
        kind="sandbox", base_url=url_a, api_key=KEY, api_secret=SECRET,
        timeout_s=1.0, connect_timeout_s=0.5, total_timeout_s=1.5, settle_s=2.0,
        breaker_failures=3, breaker_open_s=1.0,
    )  # fmt: skip
    accounts = PgAccounts(db, clock, accounts_key(base, tmp_path), base)
    book = GatewayBook(accounts, clock)
    restarted: list[subprocess.Popen[str]] = []
    try:
        await accounts.create("backup", actor="test", kind="sandbox", base_url=url_b,
                              api_key=KEY, api_secret=SECRET)  # fmt: skip
        numbers = [luhn_complete(f"411111{i:09d}") for i in range(CARDS)]
        async with connector(url_a) as pg_a, connector(url_b) as pg_b:
            mid, at_a = await merchant_with_cards(db, pg_a, numbers[: CARDS // 2])
            _, at_b = await merchant_with_cards(db, pg_b, numbers[CARDS // 2 :], merchant_id=mid)
        await accounts.set_routes(mid, primary="default", secondary="backup", actor="test")
        async with db.transaction() as s:
            await s.execute(
                update(Card).where(Card.id.in_(at_b.values())).values(pg_account_id="backup")
            )
        card_ids = [*at_a.values(), *at_b.values()]
        data = [{"card_id": card_ids[i % CARDS], "amount": 1000 + i, "order_name": f"회비 {i}"}
                for i in range(ROWS)]  # fmt: skip
        queue = JobQueue(db, clock, worker_id="w")
        sub = await BulkSubmissions(db, clock, queue).submit(
            mid, json.dumps(data).encode(), "json", actor="test"
        )
        assert sub.valid == ROWS

        charger = Charger(db, clock, book, ChargePolicy(blind_backoff_s=0.05, settle_s=2.0))
        worker = ChargeWorker(db, clock, queue, PaymentService(db, clock, book), charger,
                              rate_per_s=5000, concurrency=32, lease_s=5.0)  # fmt: skip

        async def run_all() -> None:
            while await BulkJobs(db).pending_rows():
                await worker.run(poll_s=0.2, until_idle=True)
                await asyncio.sleep(0.2)

        started = time.monotonic()
        task = asyncio.create_task(run_all())
        while await finished(db) < ROWS * 3 // 10:
            assert not task.done(), task
            assert time.monotonic() - started < 600
            await asyncio.sleep(0.1)
        primary.send_signal(signal.SIGKILL)
        primary.communicate()
        killed_at = datetime.now(UTC)
        at_kill = await finished(db)
        await asyncio.sleep(4.0)  # the primary is down: the secondary's cards go on
        during = await finished(db) - at_kill
        assert book.breaker(None).snapshot().state.value in ("open", "half_open")
        back, _ = start_sandbox(ledger_a, faults=faults, port=port_a)
        restarted.append(back)
        back_at = datetime.now(UTC)
        await asyncio.wait_for(task, timeout=600)
        print(f"\nfailover bulk: {ROWS} rows, primary killed at {at_kill} done, {during} "
              f"finished while it was down, {time.monotonic() - started:.0f} s")  # fmt: skip
    finally:
        await book.aclose()
        for proc in (primary, secondary, *restarted):
            stop(proc)

    async with db.sessions() as s:
        intents = list(await s.scalars(select(PaymentIntent)))
        attempts = list(await s.scalars(select(PaymentAttempt)))
        card_account = dict((await s.execute(select(Card.id, Card.pg_account_id))).all())
    await db.close()
    assert len(intents) == ROWS
    assert {i.status for i in intents} == {"succeeded"}
    # the same order id resumed: one attempt per row, none re-made with a new order id
    assert len(attempts) == ROWS
    by_intent = {i.id: i for i in intents}
    ledger = {"default": paid(ledger_a), "backup": paid(ledger_b)}
    assert len(ledger["default"]) == len(set(ledger["default"]))  # no order paid twice
    assert len(ledger["backup"]) == len(set(ledger["backup"]))
    assert not set(ledger["default"]) & set(ledger["backup"])
    for a in attempts:
        account = a.pg_account_id or "default"
        assert account == (card_account[by_intent[a.intent_id].card_id] or "default")
    for account, orders in ledger.items():
        sent_there = {a.order_id for a in attempts if (a.pg_account_id or "default") == account}
        assert set(orders) == sent_there, account
    # the secondary's cards were charged while the primary was down
    assert during > 0
    at_b_during = [a for a in attempts if a.pg_account_id == "backup"
                   and a.finished_at and killed_at < a.finished_at < back_at]  # fmt: skip
    assert at_b_during
