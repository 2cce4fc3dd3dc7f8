"""DID pool throughput: lease+release operations per second on SQLite and PostgreSQL.

    .venv/bin/python bench/dids.py [--ops 2000] [--concurrency 1,20] [--pg URL]

A pool of 1,000 DIDs and 10,000 mobiles, no cool-down (so the pool never runs dry);
each operation leases a DID to a random mobile and releases it, two transactions.
PostgreSQL is used when ``--pg`` or ``ARSPAY_TEST_PG_URL`` names a server (a scratch
database is created and dropped). Prints one line per (database, concurrency).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

# Run as ``python bench/dids.py``, bench/ comes first on sys.path, and its vault.py would
# shadow the ``vault`` package the engine imports: the repository root goes first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from sqlalchemy.engine import make_url

from ivr.clock import SystemClock
from ivr.dids.pool import DidPool
from ivr.store import migrate
from ivr.store.db import Database


async def run(url: str, ops: int, concurrency: int) -> float:
    db = Database(url, pool_size=max(concurrency, 1))
    await migrate.upgrade(db)
    pool = DidPool(db, SystemClock(), cooldown=timedelta(0))
    await pool.import_numbers([f"0505{n:07d}" for n in range(1000)])
    rng = random.Random(7)
    remaining = ops

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            lease = await pool.lease(f"0109{rng.randrange(10_000):07d}", "payment")
            await pool.release(lease.id)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await db.close()
    return ops / elapsed


def _admin(url: str) -> str:
    u = make_url(url)
    return str(u.set(drivername="postgresql")).replace("***", u.password or "")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,20")
    parser.add_argument("--pg", default=os.environ.get("ARSPAY_TEST_PG_URL", ""))
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    print(f"{'database':<12}{'concurrency':>12}{'ops':>8}{'lease+release/s':>18}")
    with tempfile.TemporaryDirectory() as tmp:
        for c in levels:
            url = f"sqlite+aiosqlite:///{Path(tmp) / f'bench-{c}.db'}"
            print(f"{'sqlite':<12}{c:>12}{args.ops:>8}{await run(url, args.ops, c):>18.0f}")
    if args.pg:
        for c in levels:
            name = f"arspay_bench_{secrets.token_hex(3)}"
            admin = await asyncpg.connect(_admin(args.pg))
            await admin.execute(f'CREATE DATABASE "{name}"')
            try:
                url = str(make_url(args.pg).set(database=name)).replace(
                    "***", make_url(args.pg).password or ""
                )
                rate = await run(url, args.ops, c)
                print(f"{'postgresql':<12}{c:>12}{args.ops:>8}{rate:>18.0f}")
            finally:
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                await admin.close()
    else:
        print("postgresql: skipped (no --pg / ARSPAY_TEST_PG_URL)")


if __name__ == "__main__":
    asyncio.run(main())
