"""Serve the API for real (uvicorn on a TCP port) for tests that need a running server:
a fresh SQLite database (or ``--db URL``), the sandbox PG in-process, a merchant with
an API key, a customer and a registered card. Prints one JSON line with the URL, the
key and the ids, then serves until killed.

    python -m tests.api.serve --dir /tmp/x [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from pathlib import Path

from ivr.api.deps import ApiDeps
from ivr.clock import SystemClock
from ivr.runtime import open_runtime
from ivr.store import migrate
from ivr.store.db import Database
from ivr.web.app import create_app
from ivr.web.serve import serve
from tests.api.conftest import Api, add_card, api_settings
from tests.flows.conftest import FakeBook
from tests.gateways.support import running_sandbox


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def main(workdir: Path, port: int, rate: int) -> None:
    async with running_sandbox(workdir / "pg-ledger.db") as sandbox:
        settings = api_settings(
            workdir,
            sandbox.url,
            ARSPAY_API_PORT=str(port),
            ARSPAY_API_RATE_LIMIT_PER_MINUTE=str(rate),
        )
        db = Database(settings.database_url)
        await migrate.upgrade(db)
        runtime = await open_runtime(settings, clock=SystemClock(), db=db, book=FakeBook())
        sv = runtime.services
        await sv.dids.import_numbers([f"0505222{i:04d}" for i in range(200)])
        merchant = await sv.merchants.create("행복치과")
        key = await sv.merchants.create_api_key(merchant.id, "test", actor="test")
        customer = await sv.customers.create(merchant.id, mobile="010-1234-5678")
        deps = ApiDeps.from_runtime(runtime)
        app = create_app(deps)
        holder = Api(runtime, deps, app, runtime.services.clock, sandbox, settings)  # type: ignore[arg-type]
        card_id = await add_card(holder, merchant.id, customer.id, "4111111111111111")
        info = {
            "url": f"http://127.0.0.1:{port}",
            "key": key.key,
            "merchant_id": merchant.id,
            "customer_id": customer.id,
            "card_id": card_id,
        }
        print(json.dumps(info), flush=True)
        try:
            await serve(app, settings.api)
        finally:
            await runtime.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--rate", type=int, default=1_000_000)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(main(args.dir, args.port or free_port(), args.rate))
    except KeyboardInterrupt:
        sys.exit(0)
