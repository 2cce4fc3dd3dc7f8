"""Crash test (issue #5): 2,000 charges against the sandbox PG (a separate process) with
5 % injected timeouts-after-recording and 2 % 5xx; the engine process is SIGKILLed
twice mid-run and restarted. Afterwards: exactly one ledger charge per succeeded intent,
none for failed ones, no intent lost, every attempt terminal."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ivr.clock import SystemClock
from ivr.gateways.errors import GatewayError
from ivr.payments.service import PaymentService
from ivr.store import migrate
from ivr.store.db import Database
from ivr.store.tables import PaymentAttempt, PaymentIntent
from tests.gateways.support import KEY, SECRET, connector, luhn_complete
from tests.payments.support import merchant_with_cards

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CHARGES = 2000
CARDS = 40


def start_sandbox(ledger: Path) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSPAY_")}
    env |= {
        "ARSPAY_CONFIG": "/nonexistent.toml",
        "ARSPAY_GATEWAY_API_KEY": KEY,
        "ARSPAY_GATEWAY_API_SECRET": SECRET,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ivr.cli",
            "sandbox-pg",
            "--port",
            "0",
            "--latency-ms",
            "5",
            "--error-rate",
            "0.02",
            "--timeout-rate",
            "0.05",
            "--hang-ms",
            "1500",
            "--seed",
            "7",
            "--ledger",
            str(ledger),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.stdout.readline())
    assert found
    return proc, found.group(1)


def start_worker(db_url: str, sandbox: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.payments.charge_worker", db_url, sandbox, "16"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


async def count_done(db: Database) -> int:
    async with db.sessions() as s:
        n = await s.scalar(
            select(func.count())
            .select_from(PaymentIntent)
            .where(PaymentIntent.status.in_(["succeeded", "failed"]))
        )
    return int(n or 0)


async def test_two_sigkills_mid_run_charge_each_intent_at_most_once(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}"
    db = Database(db_url)
    await migrate.upgrade(db)
    ledger = tmp_path / "ledger.db"
    sandbox, url = start_sandbox(ledger)
    try:
        numbers = [luhn_complete(f"411111{i:09d}") for i in range(CARDS)]
        async with connector(url, timeout_s=3.0) as pg:
            for _ in range(20):  # registration may hit an injected 5xx: try again
                try:
                    mid, cards = await merchant_with_cards(db, pg, numbers)
                    break
                except GatewayError:
                    continue
            payments = PaymentService(db, SystemClock(), pg)
            for i in range(CHARGES):
                await payments.create_intent(
                    mid, cards[numbers[i % CARDS]], amount=1_000 + i, order_name=f"정기결제 {i}"
                )

        kills = []
        for threshold in (CHARGES // 5, CHARGES // 2):  # kill at ~20 % and ~50 % done
            worker = start_worker(db_url, url)
            deadline = time.monotonic() + 300
            while await count_done(db) < threshold:
                assert worker.poll() is None, "worker ended before it was killed"
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            worker.send_signal(signal.SIGKILL)
            worker.communicate()
            kills.append(await count_done(db))
        worker = start_worker(db_url, url)
        out, _ = await asyncio.to_thread(worker.communicate, timeout=900)
        assert worker.returncode == 0
        assert out.strip().endswith("done")
    finally:
        sandbox.send_signal(signal.SIGTERM)
        sandbox.communicate(timeout=30)

    assert all(CHARGES // 5 <= k < CHARGES for k in kills), kills
    async with db.sessions() as s:
        intents = {i.id: i for i in await s.scalars(select(PaymentIntent))}
        attempts = list(await s.scalars(select(PaymentAttempt)))
    await db.close()
    assert len(intents) == CHARGES  # no intent lost
    assert {i.status for i in intents.values()} <= {"succeeded", "failed"}
    assert {a.status for a in attempts} <= {"succeeded", "failed"}  # all terminal

    conn = sqlite3.connect(ledger)
    paid = {
        row[0]: row[1]
        for row in conn.execute("SELECT merchant_uid, amount FROM payments WHERE status = 'paid'")
    }
    conn.close()
    by_intent: dict[str, list[str]] = {}
    for a in attempts:
        if a.order_id in paid:
            by_intent.setdefault(a.intent_id, []).append(a.order_id)
            assert a.status == "succeeded", "the PG charged an attempt we think failed"
            assert paid[a.order_id] == intents[a.intent_id].amount
    succeeded = {i for i, x in intents.items() if x.status == "succeeded"}
    assert set(by_intent) == succeeded
    assert all(len(v) == 1 for v in by_intent.values()), "an intent was charged twice"
    assert len(paid) == len(succeeded)
    assert len(succeeded) >= CHARGES * 0.95  # injected faults are recovered, not dropped
    print(
        f"\ncrash test: {len(succeeded)} succeeded, {CHARGES - len(succeeded)} failed, "
        f"killed at {kills} done"
    )
