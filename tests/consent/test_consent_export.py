"""The evidence export a merchant checks offline, the consent CLI, and the engine's
checkpoint worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest

from ivr.clock import FakeClock
from ivr.consent.evidence import export_evidence
from ivr.consent.keys import ConsentKeys
from ivr.consent.ledger import ConsentLedger
from ivr.merchants.service import MerchantService
from ivr.store.db import Database
from tests.consent.support import any_merchant, as_admin, chain, consent, rewrite
from vault.evidence import Checkpoint

pytestmark = pytest.mark.anyio


# --------------------------------------------------------------------------- export


async def test_export_carries_macs_a_checkpoint_and_a_signed_attestation(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    ledger = await chain(db, clock, tmp_path, 4)
    m = await any_merchant(db)
    ev = await export_evidence(ledger, m, "creq_2")
    [rec] = ev.records
    assert (rec.hash_valid, rec.mac_valid) == (True, True)
    assert json.loads(rec.canonical)["key_pressed"] == "1"
    assert ev.checkpoint is not None
    assert (ev.checkpoint.seq, ev.checkpoint.count) == (4, 4)
    assert ev.attestation is not None
    assert ev.attestation["records"] == [{"seq": 3, "id": rec.row.id, "hash": rec.row.hash,
                                          "mac": rec.row.mac}]  # fmt: skip
    await rewrite(db, 3, "2", mac_key=None)
    ev = await export_evidence(ledger, m, "creq_2")
    assert ev.records[0].mac_valid is False
    assert ev.attestation is None


# --------------------------------------------------------------------------- CLI


@pytest.mark.slow
async def test_consent_commands_exit_status_and_lines(
    db_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    from tests.cli.test_cli import arspay

    var = tmp_path / "var"
    env = {"ARSPAY_PATHS_VAR_DIR": str(var)}
    db = Database(db_url)
    try:
        m = await MerchantService(db, clock).create("행복치과")
        keys = ConsentKeys(var / "consent" / "evidence.key")  # the default place
        ledger = ConsentLedger(db, clock, keys)
        for i in range(3):
            await ledger.append(consent(m.id, i, clock))
        ok = arspay("consent", "verify", url=db_url, env=env)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.startswith("consent chain intact: 3 record(s), head seq 3")
        cp_file = tmp_path / "cp.json"
        made = arspay("consent", "checkpoint", "--out", str(cp_file), url=db_url, env=env)
        assert made.returncode == 0, made.stderr
        cp = Checkpoint.parse(cp_file.read_bytes())
        assert (cp.seq, cp.count) == (3, 3)
        assert len(list((var / "consent" / "checkpoints").glob("consent-*.json"))) == 1
        key = json.loads(arspay("consent", "public-key", url=db_url, env=env).stdout)
        assert key["key_id"] == cp.key_id == keys.load(create=False).key_id
        both = arspay("--json", "consent", "verify", "--checkpoint", str(cp_file),
                      url=db_url, env=env)  # fmt: skip
        assert json.loads(both.stdout) | {"notes": []} == {
            "records": 3, "head_seq": 3, "sealed_through": 0, "checkpoints": 2, "ok": True,
            "problems": [], "notes": [],
        }  # fmt: skip
        altered = tmp_path / "altered.json"
        altered.write_text(json.dumps(json.loads(cp_file.read_text()) | {"count": 2}))
        await as_admin(db, "DELETE FROM consent_records WHERE seq = 3")
        bad = arspay("consent", "verify", "--checkpoint", str(altered), url=db_url, env=env)
        assert bad.returncode == 1
        lines = bad.stdout.splitlines()
        assert lines[0] == "consent chain TAMPERED or unverifiable: 2 problem(s)"
        assert lines[1] == (f"problem: checkpoint {altered}: refused: signature does not "
                            "verify: the checkpoint was altered or forged")  # fmt: skip
        assert lines[2].startswith("problem: checkpoint ")  # the saved one
        assert "records deleted" in lines[2]
        refused = arspay("consent", "checkpoint", url=db_url, env=env)
        assert refused.returncode == 1
        assert "no checkpoint signed" in refused.stderr
        (var / "consent" / "evidence.key").unlink()
        lost = arspay("consent", "verify", url=db_url, env=env)
        assert lost.returncode == 2
        assert "key file is missing" in lost.stderr
        assert arspay("consent", "verify", "--checkpoint", "/nonexistent.json").returncode == 2
    finally:
        await db.close()


async def test_an_engine_with_a_remote_vault_macs_records_without_any_card_key(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    """The consent key is the engine's own: no KEK, no vault key file, no socket needed."""
    from ivr.runtime import build
    from ivr.settings import load_settings

    var = tmp_path / "var"
    settings = load_settings(env={
        "ARSPAY_CONFIG": "/nonexistent.toml", "ARSPAY_PATHS_VAR_DIR": str(var),
        "ARSPAY_VAULT_MODE": "remote", "ARSPAY_VAULT_KEK_PROVIDER": "pkcs11",
        "ARSPAY_VAULT_KEY_FILE": str(var / "vault" / "kek.key"),
        "ARSPAY_VAULT_SOCKET": str(tmp_path / "nowhere.sock"),
    })  # fmt: skip
    services = build(settings, clock=clock, db=db)
    m = await services.merchants.create("행복치과")
    row = await services.consent.append(consent(m.id, 1, clock))
    assert row.mac is not None
    assert (await services.consent.verify(saved=True)).ok
    assert (var / "consent" / "evidence.key").exists()
    assert not (var / "vault").exists()
    services.consent.keys.close()


async def test_the_engine_worker_writes_checkpoints_and_logs_a_broken_chain(
    db: Database, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from ivr.consent.evidence import run_checkpoints

    ledger = await chain(db, clock, tmp_path, 2)
    saved = tmp_path / "a" / "checkpoints"
    task = asyncio.create_task(run_checkpoints(ledger, 0.05))
    try:
        for _ in range(200):
            if list(saved.glob("consent-000000000002-*.json")):
                break
            await asyncio.sleep(0.05)
        assert list(saved.glob("consent-000000000002-*.json"))
        await as_admin(db, "DELETE FROM consent_records WHERE seq = 2")
        for _ in range(200):
            if "consent checkpoint not written" in caplog.text:
                break
            await asyncio.sleep(0.05)
        assert "records deleted" in caplog.text
        assert len(list(saved.glob("consent-*.json"))) == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
