"""Helpers for the chaos tests (issue #10): the engine stack on any database, the engine
as a separate process (SIGKILL-able), a TCP gate in front of the sandbox PG that can be
shut like a dead PG, killing PostgreSQL sessions, and waiting for calls at prompts.

Nothing here prints or logs DTMF digits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy import select
from sqlalchemy.engine import make_url

from ivr.engine import running
from ivr.runtime import open_runtime
from ivr.settings import Settings, load_settings
from ivr.store import migrate
from ivr.store.db import Database
from ivr.store.tables import CallRequest, CallSession, CallStep
from ivr.telephony.ari import AriClient
from ivr.telephony.credentials import checked
from ivr.telephony.errors import AriError
from ivr.testing.asterisk import Asterisk
from ivr.testing.sipp import CallResult, SippCall, start_call
from tests.gateways.support import Sandbox
from tests.stack import engine_env
from vault.factory import init_keys

from .conftest import CANARY_DIRS, EngineHarness
from .test_calls import DIDS, MOBILE, Calls, Dialogue

REPO = Path(__file__).resolve().parents[2]


def stack_env(
    workdir: Path, *, gateway_url: str, sounds_dir: Path, database_url: str | None = None
) -> dict[str, str]:
    """The ARSPAY_* settings of one engine stack (in-process or ``arspay engine run``)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("ARSPAY_")}
    env.pop("ARSPAY_DATABASE_URL", None)
    env |= engine_env(
        workdir,
        gateway_url,
        ARSPAY_PROMPTS_SOUNDS_DIR=str(sounds_dir),
        ARSPAY_API_ENABLED="false",
    )
    if database_url is not None:
        env["ARSPAY_DATABASE_URL"] = database_url
    return env


@asynccontextmanager
async def open_calls(
    env: Mapping[str, str],
    sandbox: Sandbox,
    workdir: Path,
    *,
    run_engine: bool = True,
    sweep_interval_s: float = 3600,
) -> AsyncIterator[Calls]:
    """A merchant, a customer and the DIDs on a fresh stack; the engine runs in this
    process when ``run_engine`` (otherwise its harness only reads the database)."""
    CANARY_DIRS.append(workdir)
    settings = load_settings(env=dict(env))
    init_keys(settings)
    db = Database(settings.database_url)
    await migrate.upgrade(db)
    runtime = await open_runtime(settings, db=db)
    try:
        services = runtime.services
        await services.dids.import_numbers(DIDS)
        merchant = await services.merchants.create("행복치과")
        customer = await services.customers.create(merchant.id, mobile=MOBILE)
        engine = runtime.engine(sweep_interval_s=sweep_interval_s)
        calls = Calls(runtime, EngineHarness(engine, services), sandbox, merchant.id,
                      customer.id, workdir)  # fmt: skip
        if run_engine:
            async with running(engine):
                yield calls
        else:
            yield calls
    finally:
        await runtime.close()


async def talk(
    calls: Calls,
    req: CallRequest,
    dialogue: Dialogue,
    *,
    caller: str = MOBILE,
    before: Mapping[str, Callable[[], Awaitable[None]]] | None = None,
) -> CallResult:
    """:meth:`Calls.talk`, running ``before[prompt_id]()`` once that prompt plays and
    before the payer keys an answer to it."""
    hooks = dict(before or {})
    call = SippCall(did=req.did, caller_id=caller, script=dialogue.script(),
                    headers=dialogue.headers)  # fmt: skip
    async with start_call(call, workdir=calls.workdir, timeout_s=120) as handle:
        for signal_, prompt_id in dialogue.waits:
            await calls.harness.wait_for_prompt(prompt_id, timeout_s=30)
            hook = hooks.pop(prompt_id, None)
            if hook is not None:
                await hook()
            await handle.release(signal_)
        return await handle.wait()


async def sessions_at(
    db: Database, prompt_id: str, count: int, *, timeout_s: float = 30
) -> list[CallSession]:
    """Wait until ``count`` open call sessions are playing ``prompt_id`` (read from the
    database only, so it works for an engine in another process)."""
    deadline = time.monotonic() + timeout_s
    while True:
        async with db.sessions() as s:
            rows = list(
                await s.scalars(
                    select(CallSession)
                    .join(CallStep, CallStep.session_id == CallSession.id)
                    .where(
                        CallSession.ended_at.is_(None),
                        CallStep.prompt_id == prompt_id,
                        CallStep.outcome.is_(None),
                    )
                    .distinct()
                )
            )
        if len(rows) >= count:
            return rows
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(rows)}/{count} calls at {prompt_id} after {timeout_s} s")
        await asyncio.sleep(0.05)


async def all_sessions(db: Database) -> list[CallSession]:
    async with db.sessions() as s:
        return list(await s.scalars(select(CallSession).order_by(CallSession.started_at)))


async def ari_answers(settings: Settings, timeout_s: float = 60) -> float:
    """Poll ARI every 10 ms; the monotonic time it first answered."""
    password = checked(settings, agi=False).ari_password.get_secret_value()
    a = settings.asterisk
    client = AriClient(a.ari_url, a.ari_user, password, "chaos-probe",
                       request_timeout_s=1.0)  # fmt: skip
    deadline = time.monotonic() + timeout_s
    async with client:
        while time.monotonic() < deadline:
            with contextlib.suppress(AriError):
                await client.info()
                return time.monotonic()
            await asyncio.sleep(0.01)
    raise TimeoutError("ARI did not answer")


async def start_asterisk(asterisk: Asterisk) -> None:
    """``asterisk.start()``; tolerates ``scripts/asterisk start`` reporting "exited
    during start" for an Asterisk that is up (its check can read /proc before setsid and
    chroot have exec'd asterisk when the machine is loaded)."""
    try:
        await asyncio.to_thread(asterisk.start)
    except RuntimeError:
        if not await asyncio.to_thread(asterisk.is_running):
            raise
        print("scripts/asterisk start failed but Asterisk runs: going on")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------- engine process


# --------------------------------------------------------------------------- a PG that dies


class Gate:
    """A TCP relay on a fixed local port in front of ``target``: ``shut()`` closes the
    port and cuts every open connection (the engine sees a dead PG: connection refused),
    ``open()`` serves again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def shut(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()  # one side ended: end the other

        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}
            for w in (writer, up_writer):
                w.transport.abort()


# --------------------------------------------------------------------------- PostgreSQL


async def terminate_sessions(url: str) -> int:
    """``pg_terminate_backend`` every other session on ``url``'s database; how many."""
    u = make_url(url)
    dsn = str(u.set(drivername="postgresql", database="postgres")).replace("***", u.password or "")
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            u.database,
        )
    finally:
        await conn.close()
    return sum(1 for r in rows if r["ok"])
