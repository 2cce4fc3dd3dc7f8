"""Backups on SQLite: an archive of a live engine, verified, restored into a fresh
directory, checked (rows, db check, consent chain, vault keys and a decrypt sample),
and the restored system pays with the card that was in the backup."""

from __future__ import annotations

import gzip
import stat
import tarfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.backup.create import create_backup
from ivr.backup.restore import Target, restore_backup
from ivr.backup.verify import verify_archive
from ivr.consent.keys import key_path as consent_key_path
from ivr.domain.states import CallRequestKind
from ivr.settings import Settings, load_settings
from ivr.store.tables import Card, PaymentIntent
from ivr.telephony.fake import Press
from tests.flows.test_flow_payment import VERIFY, register
from tests.gateways.support import Sandbox, running_sandbox
from tests.stack import engine_env
from vault.factory import audit_key_path, init_keys

from .conftest import T0, open_stack

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path / "pg-ledger.db") as sb:
        yield sb


def source_settings(tmp_path: Path, sandbox: Sandbox, **extra: str) -> Settings:
    settings = load_settings(env=engine_env(tmp_path / "live", sandbox.url, **extra))
    init_keys(settings)
    return settings


def key_files(settings: Settings) -> list[Path]:
    return [settings.vault.key_file, settings.vault.fingerprint_key_file,
            audit_key_path(settings), consent_key_path(settings)]  # fmt: skip


async def test_a_restored_backup_checks_out_and_pays_with_the_backed_up_card(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    settings = source_settings(tmp_path, sandbox)
    archive = tmp_path / "backups" / "b.tar.gz"
    async with open_stack(settings, sandbox, at=T0, seed=True) as live:
        await register(live)
        await live.request(CallRequestKind.payment, amount=30_000)
        outcome, _ = await live.call([Press("1"), *VERIFY, Press("1")])
        assert outcome == "completed"
        async with live.db.sessions() as s:
            [card] = list(await s.scalars(select(Card)))
        manifest = await create_backup(settings, archive)  # the engine is running
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert manifest.engine.tables["payment_attempts"] == 1
    assert manifest.vault.tables["vault_records"] == 1
    assert len(manifest.kek_ids) == 1

    # No key file is in the archive: its members are the manifest and two databases,
    # and no key file's bytes appear anywhere in it.
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["manifest.json", "engine.sqlite3", "vault.sqlite3"]
    raw = gzip.decompress(archive.read_bytes())
    for key in key_files(settings):
        assert key.exists()
        assert key.read_bytes() not in raw

    report = await verify_archive(archive, tmp_path / "scratch-verify")
    assert report.ok, report.problems

    target = tmp_path / "restored"
    restored_manifest, restored = await restore_backup(settings, archive, Target(target))
    assert restored_manifest == manifest
    assert restored.database_url.endswith(str(target / "arspay.db"))
    from ivr.backup.checks import check_restored

    checks = {c.name: c for c in await check_restored(restored, manifest, sample=3)}
    assert all(c.ok for c in checks.values()), checks
    assert checks["vault decrypt sample"].detail.startswith("1/1 ")
    consents = manifest.engine.tables["consent_records"]
    assert consents >= 2  # registration and payment
    assert checks["consent verify"].detail.startswith(f"{consents} record(s)")

    # The restored system takes a call: a payment with the card from the backup.
    async with open_stack(restored, sandbox, at=T0 + timedelta(days=1), seed=False) as again:
        await again.request(CallRequestKind.payment, amount=20_000)
        outcome, call = await again.call([Press("1"), *VERIFY, Press("1")])
        assert outcome == "completed", call.played
        async with again.db.sessions() as s:
            paid = list(await s.scalars(select(PaymentIntent).order_by(PaymentIntent.created_at)))
    assert [(p.amount, p.status, p.card_id) for p in paid] == [
        (30_000, "succeeded", card.id),
        (20_000, "succeeded", card.id),
    ]


async def test_a_restored_system_without_the_kek_fails_its_vault_checks(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    settings = source_settings(tmp_path, sandbox)
    archive = tmp_path / "b.tar"
    async with open_stack(settings, sandbox, at=T0, seed=True) as live:
        await register(live)
        manifest = await create_backup(settings, archive, compression="none")
    _, restored = await restore_backup(settings, archive, Target(tmp_path / "r"))
    other = load_settings(env=engine_env(tmp_path / "elsewhere", sandbox.url))
    init_keys(other)  # another deployment's KEK
    wrong = restored.model_copy(update={"vault": restored.vault.model_copy(update={
        "key_file": other.vault.key_file})})  # fmt: skip
    from ivr.backup.checks import check_restored

    checks = {c.name: c for c in await check_restored(wrong, manifest, sample=3)}
    assert checks["rows"].ok
    assert checks["consent verify"].ok
    assert not checks["vault keys"].ok
    assert manifest.kek_ids[0] in checks["vault keys"].detail
    assert checks["vault decrypt sample"].detail.startswith("0/1 ")
