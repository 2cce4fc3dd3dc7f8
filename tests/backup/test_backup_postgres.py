"""Backups on PostgreSQL: pg_dump (custom format) of a live engine and its vault —
sharing the engine's database or in their own — restored with pg_restore into fresh
databases, checked, and the restored system pays with the backed-up card."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.backup.checks import check_restored
from ivr.backup.create import create_backup
from ivr.backup.errors import RestoreRefused
from ivr.backup.restore import Target, restore_backup
from ivr.backup.verify import verify_archive
from ivr.domain.states import CallRequestKind
from ivr.settings import load_settings
from ivr.store.tables import Card, PaymentIntent
from ivr.telephony.fake import Press
from tests.conftest import PgFactory
from tests.flows.test_flow_payment import VERIFY, register
from tests.gateways.support import Sandbox, running_sandbox
from tests.stack import engine_env
from vault.factory import init_keys

from .conftest import T0, open_stack

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path / "pg-ledger.db") as sb:
        yield sb


@pytest.mark.parametrize("vault_db", ["shared", "own"])
async def test_pg_dump_restored_into_fresh_databases_checks_out_and_pays(
    tmp_path: Path, sandbox: Sandbox, pg_factory: PgFactory, vault_db: str
) -> None:
    source = await pg_factory.new()
    vault_source = source if vault_db == "shared" else await pg_factory.new(empty=True)
    settings = load_settings(env=engine_env(
        tmp_path / "live", sandbox.url, ARSPAY_DATABASE_URL=source,
        ARSPAY_VAULT_DATABASE_URL=vault_source,
    ))  # fmt: skip
    init_keys(settings)
    archive = tmp_path / "b.tar.gz"
    async with open_stack(settings, sandbox, at=T0, seed=True) as live:
        await register(live)
        async with live.db.sessions() as s:
            [card] = list(await s.scalars(select(Card)))
        manifest = await create_backup(settings, archive)
    members = [m.name for m in manifest.members]
    assert members == (["engine.pgdump"] if vault_db == "shared"
                       else ["engine.pgdump", "vault.pgdump"])  # fmt: skip
    assert manifest.vault.tables["vault_records"] == 1
    assert manifest.kek_ids
    report = await verify_archive(archive, tmp_path / "v")
    assert report.ok, report.problems

    target_url = await pg_factory.new(empty=True)
    vault_target = "" if vault_db == "shared" else await pg_factory.new(empty=True)
    with pytest.raises(RestoreRefused, match="database-url"):
        await restore_backup(settings, archive, Target(tmp_path / "r0"))
    with pytest.raises(RestoreRefused, match="live"):
        await restore_backup(settings, archive, Target(tmp_path / "r1", source, vault_target))
    where = Target(tmp_path / "r", target_url, vault_target)
    _, restored = await restore_backup(settings, archive, where)
    checks = {c.name: c for c in await check_restored(restored, manifest)}
    assert [c for c in checks.values() if not c.ok] == []
    assert checks["vault decrypt sample"].detail.startswith("1/1 ")
    with pytest.raises(RestoreRefused, match="not empty"):
        await restore_backup(settings, archive, Target(tmp_path / "r2", target_url, vault_target))

    async with open_stack(restored, sandbox, at=T0 + timedelta(days=1), seed=False) as again:
        await again.request(CallRequestKind.payment, amount=20_000)
        outcome, call = await again.call([Press("1"), *VERIFY, Press("1")])
        assert outcome == "completed", call.played
        async with again.db.sessions() as s:
            [paid] = list(await s.scalars(select(PaymentIntent)))
    assert (paid.amount, paid.status, paid.card_id) == (20_000, "succeeded", card.id)
    await asyncio.sleep(0)
