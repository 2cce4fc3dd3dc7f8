"""Two OS processes x 500 concurrent lease requests over 20 mobiles and 5 DIDs.

Checked afterwards from the lease history: for every (DID, mobile) the leases never
overlap and each one starts at least the cool-down after the previous one ended; each
process leased something; a mobile holding 5 leases got the "pool exhausted for this
number" error; nothing else went wrong; expiry then ends every remaining lease.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select

from ivr.clock import FakeClock, SystemClock
from ivr.dids.pool import DidPool
from ivr.store.db import Database
from ivr.store.tables import Lease

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

WORKER = Path(__file__).with_name("lease_worker.py")
COOLDOWN_S = 1.0


def _run_workers(db_url: str) -> list[dict[str, Any]]:
    """Start both workers, release them together, collect their summaries."""
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), db_url, str(seed), "500", "20", str(COOLDOWN_S)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    for p in procs:  # start both together
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results: list[dict[str, Any]] = []
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))

    return results


async def test_two_processes_never_double_lease_a_pair(db: Database, db_url: str) -> None:
    pool = DidPool(db, SystemClock(), cooldown=timedelta(seconds=COOLDOWN_S))
    await pool.import_numbers([f"0505123000{i}" for i in range(5)])

    results = await anyio.to_thread.run_sync(_run_workers, db_url)

    for r in results:
        assert r["errors"] == []
        assert r["leased"] > 0  # both processes did work
    assert sum(r["exhausted"] for r in results) > 0
    assert {m for r in results for m in r["messages"]} == {"pool exhausted for this number"}

    async with db.sessions() as s:
        rows = list(await s.scalars(select(Lease).order_by(Lease.created_at)))
    assert len(rows) == sum(r["leased"] for r in results)
    by_pair: dict[tuple[str, str], list[Lease]] = defaultdict(list)
    for row in rows:
        by_pair[(row.did, row.mobile)].append(row)
    relet = 0
    for pair, leases in by_pair.items():
        for prev, nxt in itertools.pairwise(leases):
            assert prev.ended_at is not None, f"{pair}: two leases active at once"
            assert nxt.created_at >= prev.ended_at + timedelta(seconds=COOLDOWN_S), (
                f"{pair}: re-leased {nxt.created_at - prev.ended_at} after release"
            )
            relet += 1
    assert relet > 0  # cool-downs ran out during the run and pairs were leased again
    per_mobile: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.status == "active":
            per_mobile[row.mobile] += 1
    assert max(per_mobile.values(), default=0) <= 5

    # expiry releases: an hour later every lease still active is expired
    later = FakeClock(SystemClock().now() + timedelta(hours=1))
    expired = await DidPool(db, later).expire_due()
    assert expired == sum(per_mobile.values())
    assert (await DidPool(db, later).stats()).active_leases == 0
