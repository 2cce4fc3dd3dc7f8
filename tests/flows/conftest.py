"""Flow tests: the real flows on a FakeCall, with the real store (SQLite), the real
vault (key-file KEK) and the sandbox PG in-process over HTTP; only the phone line and
the audio are fakes."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ivr.clock import FakeClock
from ivr.domain.states import CallRequestKind
from ivr.engine import Engine, Flow
from ivr.runtime import Runtime, open_runtime
from ivr.settings import Settings, load_settings
from ivr.store import migrate
from ivr.store.db import Database
from ivr.store.tables import CallRequest
from ivr.telephony.fake import Action, FakeCall
from ivr.telephony.session_log import LoggedCall
from tests.gateways.support import Sandbox, running_sandbox
from tests.stack import engine_env
from vault.factory import init_keys

pytestmark = pytest.mark.anyio

DID = "05051110001"
MOBILE = "01012345678"


class FakeBook:
    """The prompt book without audio: sound names are ``arspay/<id>``; texts and ids
    come from the real manifest (an unknown id or a missing value fails the call)."""

    def __init__(self) -> None:
        from ivr.prompts import PromptBook

        self.real = PromptBook.from_settings(Settings().prompts)

    def has(self, prompt_id: str) -> bool:
        return self.real.has(prompt_id)

    def text(self, prompt_id: str, **values: Any) -> str:
        return self.real.text(prompt_id, **values)

    async def render(self, prompt_id: str, **values: Any) -> list[str]:
        self.real.text(prompt_id, **values)  # unknown ids / missing values fail here
        return [f"arspay/{prompt_id}"]

    def sha256(self, sound_name: str) -> str:
        return hashlib.sha256(sound_name.encode()).hexdigest()


@dataclass
class Stack:
    runtime: Runtime
    sandbox: Sandbox
    clock: FakeClock
    engine: Engine
    flows: Flow
    merchant_id: str = ""
    customer_id: str = ""
    transcript: list[str] = field(default_factory=list)
    calls: int = 0
    last_did: str = DID

    @property
    def db(self) -> Database:
        return self.runtime.services.db

    async def request(
        self, kind: CallRequestKind, amount: int | None = None, product: str = "임플란트 치료"
    ) -> CallRequest:
        services = self.runtime.services
        new = await services.requests.create(
            self.merchant_id, self.customer_id, kind, product_name=product, amount=amount
        )
        await services.outbox.deliver_pending()
        self.last_did = new.request.did
        return new.request

    async def call(
        self, script: Sequence[Action], *, did: str | None = None, caller_id: str = MOBILE
    ) -> tuple[str | None, FakeCall]:
        """One call through the engine's handler (session log included); by default to
        the DID of the last request created."""
        did = did or self.last_did
        self.calls += 1
        fake = FakeCall(did=did, caller_id=caller_id, script=script, call_id=f"fake-{self.calls}")
        engine = self.engine
        outcome: list[str | None] = []

        async def flow(call: LoggedCall) -> str | None:
            result = await self.flows(call)
            outcome.append(result)
            return result

        engine.flow = flow
        await engine.handle(fake)
        await engine.session_log.flush()
        return outcome[0], fake

    async def reload(self, request_id: str) -> CallRequest:
        async with self.db.sessions() as s:
            row = await s.get(CallRequest, request_id)
        assert row is not None
        return row


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with make_stack(tmp_path) as st:
        yield st


@asynccontextmanager
async def make_stack(tmp_path: Path, **env_extra: str) -> AsyncIterator[Stack]:
    """The stack, its settings given ``env_extra`` (``ARSPAY_*`` variables) besides."""
    async with running_sandbox(tmp_path / "pg-ledger.db") as sandbox:
        env = engine_env(tmp_path, sandbox.url, ARSPAY_DATABASE_BUSY_TIMEOUT_MS="3000", **env_extra)
        settings = load_settings(env=env)
        init_keys(settings)
        db = Database(settings.database_url)
        await migrate.upgrade(db)
        clock = FakeClock(datetime(2026, 11, 28, 3, 0, tzinfo=UTC))
        lines: list[str] = []
        runtime = await open_runtime(
            settings,
            clock=clock,
            db=db,
            book=FakeBook(),
            transcript=lambda call_id, line: lines.append(line),
        )
        engine = runtime.engine(ari=False, agi=False)
        st = Stack(runtime, sandbox, clock, engine, engine.flow, transcript=lines)
        services = runtime.services
        await services.dids.import_numbers([DID, "05051110002", "05051110003"])
        merchant = await services.merchants.create("행복치과")
        st.merchant_id = merchant.id
        st.customer_id = (await services.customers.create(merchant.id, mobile=MOBILE)).id
        log_task = asyncio.create_task(engine.session_log.run())
        try:
            yield st
        finally:
            log_task.cancel()
            await runtime.close()
