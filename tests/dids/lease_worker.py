"""One OS process of the DID-pool concurrency test (and of bench/dids.py's sibling).

Usage: python lease_worker.py DB_URL SEED REQUESTS MOBILES COOLDOWN_S
Prints ``ready``, waits for a line on stdin, fires REQUESTS concurrent lease requests
spread over 3 s, releases most leases after a short hold, prints a JSON summary.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from datetime import timedelta

from ivr.clock import SystemClock
from ivr.dids.pool import DidPool
from ivr.errors import PoolExhausted
from ivr.store.db import Database


async def main(url: str, seed: int, requests: int, mobiles: int, cooldown_s: float) -> None:
    rng = random.Random(seed)
    db = Database(url, pool_size=10)
    pool = DidPool(db, SystemClock(), cooldown=timedelta(seconds=cooldown_s))
    await pool.stats()  # connect before the start signal
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    summary = {"leased": 0, "released": 0, "exhausted": 0, "errors": [], "messages": set()}

    async def one(i: int) -> None:
        await asyncio.sleep(rng.uniform(0, 3))
        mobile = f"0109000{i % mobiles:04d}"
        try:
            lease = await pool.lease(mobile, "payment")
        except PoolExhausted as exc:
            summary["exhausted"] += 1  # type: ignore[operator]
            summary["messages"].add(str(exc).split(":")[0])  # type: ignore[union-attr]
            return
        except Exception as exc:  # reported to the test, which fails on it
            summary["errors"].append(f"{type(exc).__name__}: {exc}")  # type: ignore[union-attr]
            return
        summary["leased"] += 1  # type: ignore[operator]
        await asyncio.sleep(rng.uniform(0, 0.3))
        if rng.random() < 0.7:
            await pool.release(lease.id)
            summary["released"] += 1  # type: ignore[operator]

    await asyncio.gather(*(one(i) for i in range(requests)))
    await db.close()
    summary["messages"] = sorted(summary["messages"])  # type: ignore[arg-type]
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    u, s, n, m, c = sys.argv[1:6]
    asyncio.run(main(u, int(s), int(n), int(m), float(c)))
