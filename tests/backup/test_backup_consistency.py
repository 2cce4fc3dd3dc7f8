"""A backup taken while the engine writes is one instant of the database: every
payment attempt has its intent and every intent written with an attempt has it (they
are written in one transaction), and the rows are those of the manifest."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from ivr.backup.create import create_backup
from ivr.backup.restore import Target, restore_backup
from ivr.backup.verify import verify_archive
from ivr.settings import Settings, load_settings
from ivr.store.tables import PaymentAttempt, PaymentIntent
from tests.conftest import PgFactory
from tests.flows.conftest import Stack
from tests.gateways.support import Sandbox, running_sandbox
from tests.stack import engine_env
from vault.factory import init_keys

from .conftest import T0, open_stack

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path / "pg-ledger.db") as sb:
        yield sb


async def write_pairs(stack: Stack, warm: asyncio.Event, stop: asyncio.Event) -> int:
    """Intent + attempt in one transaction each, until ``stop``; how many. ``warm`` is
    set after the 50th."""
    n = 0
    now = stack.clock.now()
    while not stop.is_set():
        intent_id = f"pi_{secrets.token_hex(8)}"
        async with stack.db.transaction() as s:
            s.add(PaymentIntent(
                id=intent_id, merchant_id=stack.merchant_id, customer_id=stack.customer_id,
                source="bulk", order_name="consistency", amount=1_000 + n, status="succeeded",
                created_at=now, updated_at=now,
            ))  # fmt: skip
            await s.flush()
            s.add(PaymentAttempt(
                id=f"pa_{secrets.token_hex(8)}", intent_id=intent_id,
                order_id=f"ord_{secrets.token_hex(8)}", amount=1_000 + n, status="succeeded",
                created_at=now,
            ))  # fmt: skip
        n += 1
        if n == 50:
            warm.set()
        await asyncio.sleep(0)
    return n


async def count_pairs(stack: Stack) -> int:
    async with stack.db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(PaymentAttempt)) or 0)


ORPHANS = (
    "SELECT count(*) FROM payment_attempts a LEFT JOIN payment_intents i "
    "ON i.id = a.intent_id WHERE i.id IS NULL"
)
LONELY = (
    "SELECT count(*) FROM payment_intents i LEFT JOIN payment_attempts a "
    "ON a.intent_id = i.id WHERE a.id IS NULL"
)
COUNTS = "SELECT (SELECT count(*) FROM payment_intents), (SELECT count(*) FROM payment_attempts)"


async def snapshot_rows(
    archive: Path, scratch: Path, settings: Settings, targets: tuple[str, str] | None
) -> tuple[int, int, int, int]:
    """(attempts without intent, intents without attempt, intents, attempts) in the
    archive's engine database: read from the SQLite member, or restored from the dump
    into the empty PostgreSQL ``targets``."""
    report = await verify_archive(archive, scratch)
    assert report.ok, report.problems  # SQLite: the manifest's rows are the file's
    if targets is None:
        db = sqlite3.connect(scratch / "engine.sqlite3")
        try:
            rows = [db.execute(q).fetchone() for q in (ORPHANS, LONELY, COUNTS)]
        finally:
            db.close()
    else:
        _, restored = await restore_backup(settings, archive, Target(scratch / "r", *targets))
        conn = await asyncpg.connect(pg_dsn(restored.database_url))
        try:
            rows = [tuple(await conn.fetchrow(q)) for q in (ORPHANS, LONELY, COUNTS)]
        finally:
            await conn.close()
    return rows[0][0], rows[1][0], rows[2][0], rows[2][1]


def pg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def factory(request: pytest.FixtureRequest, dialect: str) -> PgFactory | None:
    """PostgreSQL's database factory (set up outside the test's event loop), or None."""
    if dialect != "postgres":
        return None
    pg: PgFactory = request.getfixturevalue("pg_factory")
    return pg


@pytest.mark.parametrize(
    "dialect", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_a_backup_taken_during_writes_is_one_consistent_instant(
    tmp_path: Path, sandbox: Sandbox, factory: PgFactory | None, dialect: str
) -> None:
    extra: dict[str, str] = {}
    backups = 3
    if factory is not None:
        extra = {"ARSPAY_DATABASE_URL": await factory.new(),
                 "ARSPAY_VAULT_DATABASE_URL": await factory.new(empty=True)}  # fmt: skip
        backups = 2
    settings = load_settings(env=engine_env(tmp_path / "live", sandbox.url, **extra))
    init_keys(settings)
    async with open_stack(settings, sandbox, at=T0, seed=True) as live:
        warm, stop = asyncio.Event(), asyncio.Event()
        writer = asyncio.create_task(write_pairs(live, warm, stop))
        await warm.wait()
        snapshots = []
        for i in range(backups):
            before = await count_pairs(live)
            manifest = await create_backup(settings, tmp_path / f"b{i}.tar", compression="none")
            after = await count_pairs(live)
            snapshots.append((before, manifest, after))
        stop.set()
        written = await writer
    assert written > snapshots[-1][2]  # the writer went on after the last backup
    assert any(after > before for before, _, after in snapshots)  # rows written during one
    for i, (before, manifest, after) in enumerate(snapshots):
        targets = None
        if factory is not None:
            targets = (await factory.new(empty=True), await factory.new(empty=True))
        orphans, lonely, intents, attempts = await snapshot_rows(
            tmp_path / f"b{i}.tar", tmp_path / f"check{i}", settings, targets
        )
        n = manifest.engine.tables["payment_attempts"]
        assert (orphans, lonely) == (0, 0)
        assert (intents, attempts) == (n, n)
        assert manifest.engine.tables["payment_intents"] == n
        assert before <= n <= after
