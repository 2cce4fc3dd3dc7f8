"""Merchant REST API throughput: creating payment requests over a real socket.

    .venv/bin/python bench/api.py [--requests 2000] [--concurrency 32] [--pg URL] [--json]

For each database — a SQLite file, and PostgreSQL with ``--pg`` (or
``ARSPAY_TEST_PG_URL``; a scratch database is created and dropped) — a server process
migrates it, opens the engine's runtime, imports DIDs, creates a merchant with an API
key and one customer (a distinct mobile) per request, and serves the app with uvicorn
on 127.0.0.1 (``ivr.api.app.serve``, as the engine does). This process then sends
``--requests`` ``POST /v1/payment-requests``, each with its own ``Idempotency-Key``,
from ``--concurrency`` concurrent clients (aiohttp), and prints requests/s, p50/p99
latency and errors. The baseline is ``GET /health`` on the same server: the ceiling of
the HTTP stack (uvicorn, FastAPI and this client), with no auth and no database;
``/health`` is each result's ratio to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIDS = 100
PAYMENT_BODY = {"product_name": "임플란트", "amount": 53_000}


@dataclass
class Result:
    database: str
    endpoint: str
    requests: int
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_ms: float | None  # the server process's CPU time per request (Linux)
    vs_health: float = 1.0


# ------------------------------------------------------------------ server process


async def serve_main(workdir: Path, db_url: str, customers: int) -> None:
    """The server process: set everything up, print one JSON line, serve until SIGINT."""
    from ivr.api.deps import ApiDeps
    from ivr.clock import SystemClock
    from ivr.runtime import open_runtime
    from ivr.store import migrate
    from ivr.store.db import Database
    from ivr.web.app import create_app
    from ivr.web.serve import serve
    from tests.api.conftest import api_settings
    from tests.api.serve import free_port
    from tests.flows.conftest import FakeBook
    from tests.gateways.support import running_sandbox

    port = free_port()
    async with running_sandbox(workdir / "pg-ledger.db") as sandbox:
        settings = api_settings(
            workdir,
            sandbox.url,
            ARSPAY_DATABASE_URL=db_url,
            ARSPAY_API_PORT=str(port),
            ARSPAY_API_RATE_LIMIT_PER_MINUTE="100000000",
        )
        db = Database.from_settings(settings)
        await migrate.upgrade(db)
        runtime = await open_runtime(settings, clock=SystemClock(), db=db, book=FakeBook())
        try:
            sv = runtime.services
            await sv.dids.import_numbers([f"0505333{i:04d}" for i in range(DIDS)])
            merchant = await sv.merchants.create("벤치치과")
            key = await sv.merchants.create_api_key(merchant.id, "bench", actor="bench")
            gate = asyncio.Semaphore(8)

            async def customer(i: int) -> str:
                async with gate:
                    c = await sv.customers.create(merchant.id, mobile=f"010{i:08d}")
                    return c.id

            ids = await asyncio.gather(*(customer(i) for i in range(customers)))
            info = {"url": f"http://127.0.0.1:{port}", "key": key.key, "customers": ids}
            print(json.dumps(info), flush=True)
            await serve(create_app(ApiDeps.from_runtime(runtime)), settings.api)
        finally:
            await runtime.close()


def start_server(workdir: Path, db_url: str, customers: int) -> tuple[subprocess.Popen[str], Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSPAY_")}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--dir", str(workdir), "--db", db_url,
         "--customers", str(customers)],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=30)
        raise SystemExit(f"the API server did not start (exit status {proc.returncode})")
    return proc, json.loads(line)


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(2)  # SIGINT: the server closes its runtime and exits
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


# ------------------------------------------------------------------ load


def percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return 0.0
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


async def drive(
    n: int, concurrency: int, one: Callable[[int], Awaitable[bool]]
) -> tuple[float, list[float], int]:
    """``n`` calls of ``one(i) -> ok`` from ``concurrency`` workers: (rate, ms, errors)."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(n))

    async def worker() -> None:
        nonlocal errors
        for i in counter:
            t0 = time.perf_counter()
            try:
                ok = await one(i)
            except (TimeoutError, aiohttp.ClientError):
                ok = False
            latencies.append((time.perf_counter() - t0) * 1000)
            errors += not ok

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return n / elapsed, sorted(latencies), errors


async def ready(http: aiohttp.ClientSession, timeout_s: float = 30.0) -> None:
    """Wait until the server listens (it prints its line before uvicorn binds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            async with http.get("/health") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (None where /proc is missing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    database: str, pid: int, info: dict[str, Any], n: int, concurrency: int
) -> list[Result]:
    url, customers = info["url"], info["customers"]
    tag = secrets.token_hex(4)
    auth = {"Authorization": f"Bearer {info['key']}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as http:

        async def health(_: int) -> bool:
            async with http.get("/health") as r:
                await r.read()
                return r.status == 200

        async def payment_request(i: int) -> bool:
            body = {"customer_id": customers[i], **PAYMENT_BODY}
            headers = {**auth, "Idempotency-Key": f"bench-{tag}-{i}"}
            async with http.post("/v1/payment-requests", json=body, headers=headers) as r:
                await r.read()
                return r.status == 201

        async def run(endpoint: str, one: Callable[[int], Awaitable[bool]]) -> Result:
            before = cpu_seconds(pid)
            rate, ms, errors = await drive(n, concurrency, one)
            after = cpu_seconds(pid)
            cpu = None if before is None or after is None else (after - before) * 1000 / n
            p50, p99 = percentile(ms, 0.5), percentile(ms, 0.99)
            return Result(database, endpoint, n, concurrency, rate, p50, p99, errors, cpu)

        await ready(http)
        await drive(min(n, 200), concurrency, health)  # warm up the connections
        base = await run("GET /health", health)
        result = await run("POST /v1/payment-requests", payment_request)
        result.vs_health = result.rps / base.rps
    return [base, result]


async def bench(
    database: str, db_url: str, workdir: Path, n: int, concurrency: int
) -> list[Result]:
    proc, info = start_server(workdir, db_url, n)
    try:
        return await measure(database, proc.pid, info, n, concurrency)
    finally:
        stop_server(proc)


def show(r: Result) -> None:
    cpu = "-" if r.server_cpu_ms is None else f"{r.server_cpu_ms:.2f}"
    print(
        f"{r.database:11} {r.endpoint:26} {r.requests:>8} {r.concurrency:>5} {r.rps:>9,.0f} "
        f"{r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.errors:>6} {r.vs_health:>8.2f} {cpu:>8}",
        flush=True,
    )


async def main(n: int, concurrency: int, pg_url: str | None, as_json: bool) -> int:
    results: list[Result] = []

    def add(rows: list[Result]) -> None:
        results.extend(rows)
        if not as_json:
            for r in rows:
                show(r)

    if not as_json:
        print(
            f"{'database':11} {'endpoint':26} {'requests':>8} {'conc':>5} {'req/s':>9} "
            f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'/health':>8} {'cpu ms':>8}"
        )
    with tempfile.TemporaryDirectory(prefix="arspay-bench-api-") as tmp:
        add(await bench("sqlite", f"sqlite+aiosqlite:///{tmp}/sqlite/engine.db",
                        Path(tmp) / "sqlite", n, concurrency))  # fmt: skip
        if pg_url:
            name = f"arspay_bench_{secrets.token_hex(3)}"
            admin = str(make_url(pg_url).set(drivername="postgresql"))
            conn = await asyncpg.connect(admin)
            await conn.execute(f'CREATE DATABASE "{name}"')
            try:
                url_pg = str(make_url(pg_url).set(database=name))
                add(await bench("postgresql", url_pg, Path(tmp) / "pg", n, concurrency))
            finally:
                await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                await conn.close()
    if as_json:
        print(json.dumps({"results": [asdict(r) for r in results]}, indent=2))
    else:
        print(
            "/health: ratio to GET /health on the same server (the HTTP stack's own ceiling: "
            "no auth, no database); cpu ms: the server process's CPU time per request"
        )
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pg", default=os.environ.get("ARSPAY_TEST_PG_URL"))
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):  # SIGINT is how the bench stops it
            asyncio.run(serve_main(args.dir, args.db, args.customers))
        sys.exit(0)
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")
    sys.exit(asyncio.run(main(args.requests, args.concurrency, args.pg, args.json)))
