"""Fixtures for end-to-end tests on a real Asterisk driven by SIPp.

``asterisk`` (session): provisions Asterisk 22 (debootstrap root under var/ unless a
system Asterisk >= 20 exists), prints the provisioning time, starts it with our rendered
configuration, stops it at the end. If it cannot be provisioned the e2e tests are
skipped — except with ``CI=true``, where they fail. Its ARI password and FastAGI secret
are real generated ones (``scripts/asterisk`` runs ``arspay asterisk credentials``): the
fixture pins ``ARSPAY_ASTERISK_CREDENTIALS_FILE`` for the session, so every engine stack
the tests build from the ``ARSPAY_*`` environment reads the same file (no dev mode).

``engine`` (per test): the engine in-process on a fresh SQLite database, connected to
that Asterisk over ARI and serving FastAGI; the test sets ``engine.flow``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.engine import Engine, Flow, running
from ivr.prompts import PromptBook
from ivr.runtime import build
from ivr.settings import load_settings
from ivr.store import migrate
from ivr.store.db import Database
from ivr.store.tables import CallSession, CallStep
from ivr.telephony.session_log import LoggedCall
from ivr.testing.asterisk import Asterisk
from ivr.wiring import Services

REPO = Path(__file__).resolve().parents[2]
CREDENTIALS_FILE = REPO / "var" / "asterisk" / "credentials.toml"
SENT_DIGITS: list[str] = []  # every DTMF sequence sent in this run, for the log scan
CANARY_DIRS: list[Path] = []  # every directory an e2e engine stack wrote, for the scan


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def asterisk() -> Iterator[Asterisk]:
    ci = os.environ.get("CI") == "true"
    if shutil.which("sipp") is None:
        if ci:
            pytest.fail("sipp (Debian sip-tester) is not installed")
        pytest.skip("sipp not installed")
    # Real generated credentials, shared by Asterisk and every engine of the session.
    creds = pytest.MonkeyPatch()
    creds.setenv("ARSPAY_ASTERISK_CREDENTIALS_FILE", str(CREDENTIALS_FILE))
    creds.delenv("ARSPAY_ENGINE_DEV_MODE", raising=False)
    try:
        ast = Asterisk(REPO)
        started = time.monotonic()
        try:
            spent = ast.setup()
        except RuntimeError as exc:
            if ci:
                pytest.fail(f"Asterisk could not be provisioned: {exc}")
            pytest.skip(f"Asterisk could not be provisioned: {exc}")
        print(f"\nasterisk: provisioning took {spent:.1f} s")
        ast.start()
        print(f"asterisk: ready after {time.monotonic() - started:.1f} s")
        try:
            yield ast
        finally:
            ast.stop()
    finally:
        creds.undo()


@dataclass
class EngineHarness:
    engine: Engine
    services: Services
    results: asyncio.Queue[object] = field(default_factory=asyncio.Queue)

    @property
    def db(self) -> Database:
        return self.services.db

    async def sessions(self) -> list[CallSession]:
        await self.engine.session_log.flush()
        async with self.db.sessions() as s:
            return list(await s.scalars(select(CallSession).order_by(CallSession.started_at)))

    async def steps(self, session_id: str) -> list[CallStep]:
        await self.engine.session_log.flush()
        async with self.db.sessions() as s:
            q = select(CallStep).where(CallStep.session_id == session_id).order_by(CallStep.seq)
            return list(await s.scalars(q))

    async def wait_for_prompt(self, prompt_id: str, timeout_s: float = 10.0) -> CallStep:
        """Wait until a call is playing ``prompt_id`` (from the call-session log)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await self.engine.session_log.flush()
            async with self.db.sessions() as s:
                row = await s.scalar(
                    select(CallStep).where(
                        CallStep.prompt_id == prompt_id, CallStep.outcome.is_(None)
                    )
                )
            if row is not None:
                return row
            await asyncio.sleep(0.05)
        raise TimeoutError(f"prompt {prompt_id} did not start within {timeout_s} s")

    async def wait_sessions_closed(self, count: int, timeout_s: float = 15.0) -> list[CallSession]:
        deadline = time.monotonic() + timeout_s
        while True:
            rows = await self.sessions()
            if len(rows) >= count and all(r.ended_at is not None for r in rows):
                return rows
            if time.monotonic() > deadline:
                states = [(r.channel_id, r.status) for r in rows]
                raise TimeoutError(f"sessions not closed: {states}")
            await asyncio.sleep(0.1)


@pytest.fixture
async def engine(asterisk: Asterisk, tmp_path: Path) -> AsyncIterator[EngineHarness]:
    env = {k: v for k, v in os.environ.items() if k.startswith("ARSPAY_")}
    env |= {"ARSPAY_CONFIG": "/nonexistent.toml", "ARSPAY_PATHS_VAR_DIR": str(tmp_path / "var")}
    env.pop("ARSPAY_DATABASE_URL", None)
    settings = load_settings(env=env)
    db = Database(settings.database_url)
    await migrate.upgrade(db)
    services = build(settings, db=db)

    async def no_flow(call: LoggedCall) -> str:
        await call.hangup()
        return "no_flow"

    harness = EngineHarness(Engine(services, no_flow), services)
    async with running(harness.engine):
        yield harness
    await services.close()


def set_flow(harness: EngineHarness, flow: Flow) -> None:
    harness.engine.flow = flow


@pytest.fixture(scope="session")
def prompts_dir(asterisk: Asterisk) -> Path:
    """The manifest built once into Asterisk's sounds directory (cached by text hash)."""
    import asyncio

    settings = load_settings(
        env={
            "ARSPAY_CONFIG": "/nonexistent.toml",
            "ARSPAY_PROMPTS_SOUNDS_DIR": str(asterisk.sounds_dir),
        }
    )
    report = asyncio.run(PromptBook.from_settings(settings.prompts).build())
    print(f"\nprompts: {report.total} segments in {report.seconds:.1f} s ({report.built} built)")
    return asterisk.sounds_dir
