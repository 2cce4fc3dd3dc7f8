"""Backup tests: a source engine stack (the flow tests' real store, vault and sandbox
PG, on a FakeCall) whose databases are backed up, and a second stack opened on the
restored databases to take a call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import select

from ivr.clock import FakeClock
from ivr.runtime import open_runtime
from ivr.settings import Settings
from ivr.store import migrate
from ivr.store.db import Database
from ivr.store.tables import Customer, Merchant
from tests.flows.conftest import DID, MOBILE, FakeBook, Stack
from tests.gateways.support import Sandbox

DIDS = [DID, "05051110002", "05051110003", "05051110004"]


@asynccontextmanager
async def open_stack(
    settings: Settings, sandbox: Sandbox, *, at: datetime, seed: bool
) -> AsyncIterator[Stack]:
    """An engine on ``settings``' databases; ``seed``: a new one (DIDs, a merchant and a
    customer), else the merchant and customer already in them (a restored system)."""
    db = Database(settings.database_url, busy_timeout_ms=3000)
    await migrate.upgrade(db)
    lines: list[str] = []
    runtime = await open_runtime(
        settings, clock=FakeClock(at), db=db, book=FakeBook(),
        transcript=lambda call_id, line: lines.append(line),
    )  # fmt: skip
    engine = runtime.engine(ari=False, agi=False)
    clock = runtime.services.clock
    assert isinstance(clock, FakeClock)
    st = Stack(runtime, sandbox, clock, engine, engine.flow, transcript=lines)
    services = runtime.services
    if seed:
        await services.dids.import_numbers(DIDS)
        st.merchant_id = (await services.merchants.create("행복치과")).id
        st.customer_id = (await services.customers.create(st.merchant_id, mobile=MOBILE)).id
    else:
        async with db.sessions() as s:
            st.merchant_id = (await s.scalars(select(Merchant.id))).one()
            st.customer_id = (await s.scalars(select(Customer.id))).one()
    log_task = asyncio.create_task(engine.session_log.run())
    try:
        yield st
    finally:
        log_task.cancel()
        await runtime.close()


T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
