"""Bulk charge throughput against the sandbox PG (a separate process, 30 ms latency).

    .venv/bin/python bench/bulk.py [--rows 100000] [--concurrency 64] [--pg URL]

Prints, in one run: the raw sandbox ceiling (concurrent billing-key charges straight
to the PG, no engine), bulk charges/s on one node (SQLite), and on two nodes (two
engine processes) sharing PostgreSQL (``--pg`` or ``ARSPAY_TEST_PG_URL``; a scratch
database is created and dropped), each with its ratio to the ceiling. Goal (issue #8):
>= 1,000 charges/s on one node.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.bulk.charges import ChargeWorker  # noqa: E402
from ivr.bulk.progress import BulkJobs  # noqa: E402
from ivr.bulk.submit import BulkSubmissions  # noqa: E402
from ivr.clock import SystemClock  # noqa: E402
from ivr.domain.ids import new_order_id  # noqa: E402
from ivr.gateways.contract import ChargeRequest  # noqa: E402
from ivr.jobs.queue import JobQueue  # noqa: E402
from ivr.payments.charger import Charger  # noqa: E402
from ivr.payments.service import PaymentService  # noqa: E402
from ivr.store import migrate  # noqa: E402
from ivr.store.db import Database  # noqa: E402
from tests.gateways.support import KEY, SECRET, connector, luhn_complete  # noqa: E402
from tests.payments.support import merchant_with_cards  # noqa: E402

CARDS = 50


def start_sandbox(ledger: Path) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSPAY_")}
    env |= {"ARSPAY_CONFIG": "/nonexistent.toml", "ARSPAY_GATEWAY_API_KEY": KEY,
            "ARSPAY_GATEWAY_API_SECRET": SECRET}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "sandbox-pg", "--port", "0", "--latency-ms", "30",
         "--ledger", str(ledger)],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.stdout.readline())
    assert found, "sandbox did not start"
    return proc, found.group(1)


async def ceiling(url: str, n: int, concurrency: int, uids: list[str]) -> float:
    async with connector(url, timeout_s=10.0) as pg:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await pg.charge_billing_key(ChargeRequest(
                    customer_uid=uids[i % len(uids)], order_id=new_order_id(),
                    amount=1000 + i, order_name="ceiling"))  # fmt: skip

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - started)


async def setup(db_url: str, url: str, rows: int) -> tuple[str, bytes, list[str]]:
    db = Database(db_url)
    await migrate.upgrade(db)
    numbers = [luhn_complete(f"411111{i:09d}") for i in range(CARDS)]
    async with connector(url) as pg:
        mid, cards = await merchant_with_cards(db, pg, numbers)
    from ivr.store.tables import Card

    async with db.sessions() as s:
        uids = [c.billing_key_ref for c in [await s.get(Card, cards[n]) for n in numbers] if c]
    await db.close()
    data = json.dumps([{"card_id": cards[numbers[i % CARDS]], "amount": 1000 + i,
                        "order_name": f"bench {i}"} for i in range(rows)]).encode()  # fmt: skip
    return mid, data, [u for u in uids if u]


async def node(db_url: str, url: str, name: str, concurrency: int) -> None:
    # PostgreSQL allows 100 connections: two nodes share it (pool_size + overflow each)
    pool = concurrency + 4 if db_url.startswith("sqlite") else min(concurrency, 20)
    db = Database(db_url, pool_size=pool)
    clock = SystemClock()
    async with connector(url, timeout_s=10.0) as pg:
        bulk = ChargeWorker(db, clock, JobQueue(db, clock, worker_id=name),
                            PaymentService(db, clock, pg), Charger(db, clock, pg),
                            rate_per_s=100_000, concurrency=concurrency)  # fmt: skip
        while await BulkJobs(db).pending_rows():  # rows the other node holds may come back
            await bulk.run(poll_s=0.1, until_idle=True)
            await asyncio.sleep(0.05)
    await db.close()


async def bulk_rate(
    db_url: str, url: str, rows: int, nodes: int, concurrency: int
) -> tuple[float, float]:
    """Rows/s of ``nodes`` engine processes (separate OS processes, as deployed), and
    the seconds the upload itself took (parse, check, store every row's job)."""
    mid, data, _ = await setup(db_url, url, rows)
    db = Database(db_url)
    clock = SystemClock()
    submitted = time.perf_counter()
    await BulkSubmissions(db, clock, JobQueue(db, clock, worker_id="submit")).submit(
        mid, data, "json", actor="bench"
    )
    submit_s = time.perf_counter() - submitted
    await db.close()
    started = time.perf_counter()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--node", db_url, url, f"n{i}", str(concurrency), cwd=ROOT
        )
        for i in range(nodes)
    ]
    codes = [await p.wait() for p in procs]
    assert codes == [0] * nodes, f"a node failed: {codes}"
    return rows / (time.perf_counter() - started), submit_s


async def main(rows: int, concurrency: int, pg_url: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="arspay-bench-bulk-") as tmp:
        sandbox, url = start_sandbox(Path(tmp) / "ledger.db")
        try:
            sqlite_url = f"sqlite+aiosqlite:///{tmp}/engine.db"
            _, _, uids = await setup(f"sqlite+aiosqlite:///{tmp}/ceiling.db", url, 1)
            top = await ceiling(url, min(rows, 20_000), concurrency, uids)
            print(f"{'setup':28} {'rows':>8} {'charges/s':>10} {'/ceiling':>9} {'upload s':>9}")
            print(
                f"{'sandbox ceiling (no engine)':28} {min(rows, 20_000):>8} {top:>10,.0f} {1:>9.2f}"
            )
            rate, up = await bulk_rate(sqlite_url, url, rows, 1, concurrency)
            print(f"{'one node, SQLite':28} {rows:>8} {rate:>10,.0f} {rate / top:>9.2f} {up:>9.1f}")
            if pg_url:
                name = f"arspay_bench_{secrets.token_hex(3)}"
                admin = str(make_url(pg_url).set(drivername="postgresql"))
                conn = await asyncpg.connect(admin)
                await conn.execute(f'CREATE DATABASE "{name}"')
                try:
                    url_pg = str(make_url(pg_url).set(database=name))
                    rate, up = await bulk_rate(url_pg, url, rows, 2, concurrency)
                    print(
                        f"{'two nodes, PostgreSQL':28} {rows:>8} {rate:>10,.0f} "
                        f"{rate / top:>9.2f} {up:>9.1f}"
                    )
                finally:
                    await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                    await conn.close()
            print("goal: >= 1,000 charges/s on one node (issue #8); upload s: the submit of "
                  "all rows (parse, check, one transaction)")  # fmt: skip
        finally:
            sandbox.terminate()
            sandbox.communicate(timeout=30)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--node"]:  # one engine node (a child process of the bench)
        db_url, url, name, conc = sys.argv[2:6]
        asyncio.run(node(db_url, url, name, int(conc)))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pg", default=os.environ.get("ARSPAY_TEST_PG_URL"))
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.concurrency, args.pg))
