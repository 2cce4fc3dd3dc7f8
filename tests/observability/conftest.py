"""Observability tests: the flows' stack (real store, vault and sandbox PG; a FakeCall
for the phone line) with the API served for real on a TCP port, so ``/metrics`` and
``/ready`` are read over HTTP as Prometheus and a load balancer read them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from ivr.api.deps import ApiDeps
from ivr.clock import FakeClock
from ivr.observability.scrape import Samples, scrape
from ivr.runtime import open_runtime
from ivr.settings import load_settings
from ivr.store import migrate
from ivr.store.db import Database
from ivr.web.app import create_app
from tests.flows.conftest import DID, MOBILE, FakeBook, Stack
from tests.gateways.support import running_sandbox
from tests.stack import engine_env, serving
from vault.factory import init_keys

TOKEN = "metrics-token-for-tests"


@dataclass
class Ops:
    stack: Stack
    url: str  # the API's base URL

    async def metrics(self) -> Samples:
        return await scrape(self.url + "/metrics", token=TOKEN)

    async def ready(self) -> tuple[int, dict[str, object]]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url + "/ready") as resp,
        ):
            return resp.status, await resp.json(content_type=None)


@pytest.fixture
def ops_db_url() -> str | None:
    """The engine database (None: SQLite in the work directory); a test module that
    reads or writes rows on its own overrides it with ``db_url`` (SQLite and
    PostgreSQL)."""
    return None


@pytest.fixture
async def ops(tmp_path: Path, ops_db_url: str | None) -> AsyncIterator[Ops]:
    async with running_sandbox(tmp_path / "pg-ledger.db") as sandbox:
        env = engine_env(
            tmp_path,
            sandbox.url,
            ARSPAY_DATABASE_BUSY_TIMEOUT_MS="3000",
            ARSPAY_API_METRICS_TOKEN=TOKEN,
            ARSPAY_ASTERISK_ARI_PASSWORD="ari-password-for-tests",
            ARSPAY_ASTERISK_AGI_SECRET="agi-secret-for-tests",
        )
        if ops_db_url is not None:
            env["ARSPAY_DATABASE_URL"] = ops_db_url
        settings = load_settings(env=env)
        init_keys(settings)
        db = Database(settings.database_url)
        await migrate.upgrade(db)
        clock = FakeClock(datetime(2026, 11, 28, 3, 0, tzinfo=UTC))
        runtime = await open_runtime(settings, clock=clock, db=db, book=FakeBook())
        engine = runtime.engine(ari=False, agi=False, scheduler=False)
        st = Stack(runtime, sandbox, clock, engine, engine.flow)
        services = runtime.services
        await services.dids.import_numbers([DID, "05051110002", "05051110003"])
        merchant = await services.merchants.create("행복치과")
        st.merchant_id = merchant.id
        st.customer_id = (await services.customers.create(merchant.id, mobile=MOBILE)).id
        app = create_app(ApiDeps.from_runtime(runtime))
        log_task = asyncio.create_task(engine.session_log.run())
        try:
            async with serving(app, settings.api) as url:
                yield Ops(st, url)
        finally:
            log_task.cancel()
            await asyncio.gather(log_task, return_exceptions=True)
            await runtime.close()
