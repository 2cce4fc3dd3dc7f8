"""Consent evidence against a database admin with full access, on SQLite and PostgreSQL:
each test does the attack — triggers dropped or disabled, records rewritten with their
hashes (and even MACs under a key of the attacker's) recomputed, the newest record
deleted, a forged one inserted in the middle, the table truncated — and the evidence
(keyed MAC chain, signed checkpoints) shows it. Plus: TRUNCATE and MAC-less inserts
refused by the database, checkpoints altered, forged or from another deployment
refused, the upgrade of a database holding records from before keyed MACs, key file
mistakes, and the export a merchant checks offline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import FakeClock
from ivr.consent.evidence import checkpoint_now, export_evidence, make_checkpoint
from ivr.consent.keys import LEDGER, ConsentKeys
from ivr.consent.ledger import ConsentInput, ConsentLedger, PlayedPrompt
from ivr.consent.records import GENESIS, record_hash
from ivr.errors import ConfigError, IntegrityViolation
from ivr.merchants.service import MerchantService
from ivr.store import migrate
from ivr.store.db import Database
from ivr.store.tables import ConsentRecord, ConsentSeal
from vault.errors import CheckpointRefused
from vault.evidence import Checkpoint, CheckpointDir, EvidenceKey

pytestmark = pytest.mark.anyio


def consent(merchant_id: str, i: int, clock: FakeClock, key: str = "1") -> ConsentInput:
    clock.advance(timedelta(seconds=1))
    now = clock.now()
    return ConsentInput(merchant_id, f"creq_{i}", "payment_confirmation", "05050000000",
                        "01012345678", f"chan-{i}", now, now,
                        (PlayedPrompt("pay.confirm", f"{i:064x}"),), key,
                        {"amount": 53000 + i})  # fmt: skip


def ledger_for(db: Database, clock: FakeClock, tmp_path: Path, name: str = "a") -> ConsentLedger:
    keys = ConsentKeys(tmp_path / name / "evidence.key")
    return ConsentLedger(db, clock, keys, CheckpointDir(tmp_path / name / "checkpoints", LEDGER))


async def chain(db: Database, clock: FakeClock, tmp_path: Path, n: int = 5) -> ConsentLedger:
    m = await MerchantService(db, clock).create("행복치과")
    ledger = ledger_for(db, clock, tmp_path)
    for i in range(n):
        await ledger.append(consent(m.id, i, clock))
    return ledger


@asynccontextmanager
async def admin(db: Database) -> AsyncIterator[AsyncSession]:
    """A transaction with the append-only triggers out of the way, as a database admin
    can have it (PostgreSQL: disabled for the transaction; SQLite: dropped)."""
    async with db.transaction() as s:
        if db.is_postgres:
            for table in ("consent_records", "consent_seals"):
                await s.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        else:
            for trigger in ("consent_records_no_update", "consent_records_no_delete",
                            "consent_records_mac_required", "consent_seals_no_update",
                            "consent_seals_no_delete"):  # fmt: skip
                await s.execute(text(f"DROP TRIGGER IF EXISTS {trigger}"))
        yield s
        if db.is_postgres:
            await s.flush()
            for table in ("consent_records", "consent_seals"):
                await s.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))


async def as_admin(db: Database, *statements: str) -> None:
    async with admin(db) as s:
        for sql in statements:
            await s.execute(text(sql))


async def rewrite(db: Database, seq: int, key_pressed: str, mac_key: EvidenceKey | None) -> None:
    """The review's attack: change a key press, recompute the hash of that record and of
    every later one (prev_hash links included) — and, with ``mac_key``, their MACs too."""
    async with admin(db) as s:
        rows = list(await s.scalars(select(ConsentRecord).order_by(ConsentRecord.seq)))
        seal = await s.get(ConsentSeal, 1)
        prev_hash, prev_mac = GENESIS, seal.mac if seal else GENESIS
        for row in rows:
            if row.seq == seq:
                row.key_pressed = key_pressed
            if row.seq >= seq:
                row.prev_hash = prev_hash
                row.hash = record_hash(row)
                if mac_key is not None:
                    row.mac = mac_key.mac(row.seq, row.hash, prev_mac)
            prev_hash, prev_mac = row.hash, row.mac or prev_mac


# --------------------------------------------------------------------------- the chain


async def test_records_carry_chained_macs_and_verify(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    ledger = await chain(db, clock, tmp_path)
    result = await ledger.verify()
    assert (result.ok, result.records, result.head_seq, result.sealed_through) == (True, 5, 5, 0)
    key = ledger.keys.load(create=False)
    async with db.sessions() as s:
        rows = list(await s.scalars(select(ConsentRecord).order_by(ConsentRecord.seq)))
        seal = await s.get(ConsentSeal, 1)
    assert seal is not None
    assert seal.key_id == key.key_id
    prev = seal.mac
    for row in rows:
        assert row.mac == key.mac(row.seq, row.hash, prev)
        prev = row.mac
    assert result.head_mac == prev
    mode = (tmp_path / "a" / "evidence.key").stat().st_mode & 0o777
    assert mode == 0o600


async def test_rewritten_record_with_recomputed_hashes_is_detected(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    ledger = await chain(db, clock, tmp_path)
    await rewrite(db, 3, "3", mac_key=None)
    result = await ledger.verify()
    assert not result.ok
    assert result.first_bad_seq == 3
    assert "MAC does not match" in (result.problem or "")
    assert [p.seq for p in result.problems] == [3, 4, 5]  # every rehashed record


async def test_macs_recomputed_with_a_wrong_key_are_detected(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    ledger = await chain(db, clock, tmp_path)
    await rewrite(db, 2, "2", mac_key=EvidenceKey(secrets.token_bytes(32), LEDGER))
    result = await ledger.verify()
    assert not result.ok
    assert (result.first_bad_seq, result.problem) == (
        2,
        "MAC does not match: rewritten, inserted, or sealed with another key",
    )


async def test_resealing_under_the_attackers_key_is_detected(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    ledger = await chain(db, clock, tmp_path)
    rogue = EvidenceKey(secrets.token_bytes(32), LEDGER)
    await as_admin(db, f"UPDATE consent_seals SET key_id = '{rogue.key_id}'")
    await rewrite(db, 1, "2", mac_key=rogue)
    result = await ledger.verify()
    assert not result.ok
    assert any("sealed under key" in p.reason for p in result.problems)
    with pytest.raises(ConfigError, match="sealed under key"):
        await ledger.append(consent("x", 9, clock))


async def test_deleted_newest_record_is_detected_against_a_checkpoint(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    ledger = await chain(db, clock, tmp_path)
    cp, _ = await make_checkpoint(ledger)
    assert (cp.seq, cp.count) == (5, 5)
    await as_admin(db, "DELETE FROM consent_records WHERE seq = 5")
    assert (await ledger.verify()).ok  # a chain alone cannot tell: that is what checkpoints are for
    result = await ledger.verify([("kept.json", cp)])
    assert not result.ok
    [problem] = result.problems
    assert problem.reason.startswith("checkpoint kept.json: records deleted")
    # the engine's own saved checkpoint catches it too, and no new checkpoint is signed
    assert ledger.saved is not None
    ledger.saved.save(cp)
    assert not (await ledger.verify(saved=True)).ok
    with pytest.raises(IntegrityViolation, match="records deleted"):
        await make_checkpoint(ledger)


async def test_forged_record_inserted_in_the_middle_is_detected(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    ledger = await chain(db, clock, tmp_path)
    cp, _ = await make_checkpoint(ledger)
    await as_admin(db, *(f"UPDATE consent_records SET seq = {n + 1}, id = 'cns_moved{n}' "
                         f"WHERE seq = {n}" for n in (5, 4, 3)))  # fmt: skip
    async with db.transaction() as s:  # an INSERT with a MAC passes the triggers
        template = await s.get(ConsentRecord, 2)
        assert template is not None
        values = {c.key: getattr(template, c.key) for c in ConsentRecord.__table__.c}
        forged = ConsentRecord(**values)
        forged.seq, forged.id, forged.call_request_id = 3, "cns_forged", "creq_forged"
        forged.prev_hash = template.hash
        forged.hash = record_hash(forged)
        forged.mac = secrets.token_hex(32)
        s.add(forged)
    result = await ledger.verify([("kept.json", cp)])
    assert not result.ok
    assert result.first_bad_seq == 3
    assert any("checkpoint kept.json: record 5 is not the head" in p.reason
               for p in result.problems)  # fmt: skip


async def test_truncate_is_refused_on_postgresql(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    if not db.is_postgres:
        pytest.skip("SQLite has no TRUNCATE (DELETE is refused: test_store)")
    await chain(db, clock, tmp_path, 2)
    for sql in ("TRUNCATE consent_records", "TRUNCATE merchants CASCADE",
                "TRUNCATE consent_seals"):  # fmt: skip
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.transaction() as s:
                await s.execute(text(sql))
    async with db.sessions() as s:
        assert await s.scalar(text("SELECT count(*) FROM consent_records")) == 2


async def test_seal_and_macless_records_are_refused_by_the_database(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    await chain(db, clock, tmp_path, 1)
    for sql in ("UPDATE consent_seals SET note = 'x'", "DELETE FROM consent_seals",
                "UPDATE consent_records SET mac = NULL"):  # fmt: skip
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.transaction() as s:
                await s.execute(text(sql))
    async with db.sessions() as s:
        row = await s.get(ConsentRecord, 1)
    assert row is not None
    values = {c.key: getattr(row, c.key) for c in ConsentRecord.__table__.c}
    values |= {"seq": 2, "id": "cns_nomac", "hash": "f" * 64, "mac": None}
    with pytest.raises(DBAPIError, match="needs its chain MAC"):
        async with db.transaction() as s:
            await s.execute(insert(ConsentRecord), [values])


async def test_truncation_behind_the_triggers_is_detected_against_a_checkpoint(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    ledger = await chain(db, clock, tmp_path, 3)
    cp, _ = await make_checkpoint(ledger)
    await as_admin(db, "DELETE FROM consent_records", "DELETE FROM consent_seals")
    result = await ledger.verify([("kept.json", cp)])
    assert not result.ok
    assert "records deleted" in result.lines()[0]
    assert "now holds 0" in result.lines()[0]


async def test_record_without_mac_behind_the_trigger_is_detected(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    ledger = await chain(db, clock, tmp_path, 2)
    await as_admin(db, "UPDATE consent_records SET mac = NULL WHERE seq = 2")
    result = await ledger.verify()
    assert (result.first_bad_seq, result.problem) == (2, "no MAC: written outside the keyed chain")
    with pytest.raises(IntegrityViolation, match="has no MAC"):
        await ledger.append(consent("x", 9, clock))


async def test_concurrent_appends_from_two_engines_keep_one_chain(
    db_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    dbs = [Database(db_url), Database(db_url)]
    try:
        m = await MerchantService(dbs[0], clock).create("행복치과")
        keys = tmp_path / "shared" / "evidence.key"
        ledgers = [ConsentLedger(d, clock, ConsentKeys(keys)) for d in dbs]
        await asyncio.gather(*(ledgers[i % 2].append(consent(m.id, i, clock))
                               for i in range(20)))  # fmt: skip
        result = await ledgers[0].verify()
        assert (result.ok, result.records) == (True, 20), result.lines()
    finally:
        for d in dbs:
            await d.close()


# --------------------------------------------------------------------------- checkpoints


async def test_checkpoint_is_signed_and_parses_back(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    ledger = await chain(db, clock, tmp_path, 3)
    cp, result = await make_checkpoint(ledger)
    doc = json.loads(cp.to_json())
    assert set(doc) == {"format", "ledger", "seq", "count", "head_mac", "at", "key_id",
                        "public_key", "signature"}  # fmt: skip
    assert (doc["ledger"], doc["seq"], doc["count"], doc["head_mac"]) == (
        "consent",
        3,
        3,
        result.head_mac,
    )
    again = Checkpoint.parse(cp.to_json())
    assert again == cp
    assert again.refusal(ledger.keys.load(create=False)) is None
    verified = await ledger.verify([("cp", again)])
    assert (verified.ok, verified.checkpoints) == (True, 1)


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", 2), ("count", 99), ("head_mac", "a" * 64), ("at", "2020-01-01T00:00:00.000000+00:00")],
)
async def test_altered_checkpoint_is_refused(
    db: Database, clock: FakeClock, tmp_path: Path, field: str, value: object
) -> None:
    ledger = await chain(db, clock, tmp_path, 3)
    cp, _ = await make_checkpoint(ledger)
    doc = json.loads(cp.to_json()) | {field: value}
    altered = Checkpoint.parse(json.dumps(doc))
    result = await ledger.verify([("altered.json", altered)])
    assert not result.ok
    assert result.lines() == [
        "checkpoint altered.json: refused: signature does not verify: the checkpoint was "
        "altered or forged"
    ]


async def test_forged_signature_and_foreign_checkpoints_are_refused(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    ledger = await chain(db, clock, tmp_path, 3)
    cp, _ = await make_checkpoint(ledger)
    doc = json.loads(cp.to_json())
    doc["signature"] = json.loads(cp.to_json())["signature"][:-4] + "AAA="
    forged = Checkpoint.parse(json.dumps(doc))
    # another deployment: its own key, same shape of chain
    other = ledger_for(db, clock, tmp_path, "other")
    other_key = other.keys.load(create=True)
    foreign = Checkpoint.make(other_key, seq=cp.seq, count=cp.count, head_mac=cp.head_mac,
                              at=clock.now())  # fmt: skip
    result = await ledger.verify([("forged.json", forged), ("foreign.json", foreign)])
    assert not result.ok
    lines = result.lines()
    assert lines[0] == ("checkpoint forged.json: refused: signature does not verify: the "
                        "checkpoint was altered or forged")  # fmt: skip
    assert lines[1].startswith("checkpoint foreign.json: refused: signed by another key")
    assert other_key.key_id in lines[1]
    for junk in (b"not json", b"{}", json.dumps(doc | {"extra": 1}).encode()):
        with pytest.raises(CheckpointRefused):
            Checkpoint.parse(junk)


async def test_periodic_checkpoint_only_when_the_head_moved(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    fresh = ledger_for(db, clock, tmp_path, "fresh")
    assert await checkpoint_now(fresh) is None  # nothing yet, and no key file made
    assert not fresh.keys.exists()
    ledger = await chain(db, clock, tmp_path, 2)
    first = await checkpoint_now(ledger)
    assert first is not None
    assert first.seq == 2
    assert await checkpoint_now(ledger) is None
    await ledger.append(consent(await _merchant(db), 7, clock))
    second = await checkpoint_now(ledger)
    assert second is not None
    assert second.seq == 3
    assert len(list((tmp_path / "a" / "checkpoints").glob("consent-*.json"))) == 2
    await as_admin(db, "DELETE FROM consent_records WHERE seq = 3")
    with pytest.raises(IntegrityViolation, match="records deleted"):
        await checkpoint_now(ledger)


async def _merchant(db: Database) -> str:
    async with db.sessions() as s:
        return str(await s.scalar(text("SELECT id FROM merchants LIMIT 1")))


# --------------------------------------------------------------------------- keys


async def test_a_missing_or_other_key_file_stops_consent_writes(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    await chain(db, clock, tmp_path, 1)
    m = await _merchant(db)
    (tmp_path / "a" / "evidence.key").unlink()
    lost = ledger_for(db, clock, tmp_path)  # a new process: nothing cached
    with pytest.raises(ConfigError, match="key file is missing"):
        await lost.append(consent(m, 2, clock))
    with pytest.raises(ConfigError, match="key file is missing"):
        await lost.verify()
    other = ledger_for(db, clock, tmp_path, "other")
    other.keys.load(create=True)
    with pytest.raises(ConfigError, match="sealed under key"):
        await other.append(consent(m, 3, clock))
    assert not (tmp_path / "a" / "evidence.key").exists()  # never silently re-made


# --------------------------------------------------------------------------- upgrade


async def legacy_records(db: Database, clock: FakeClock, n: int) -> str:
    """Take the database back to 0007 and write records the way that release did."""
    await _downgrade(db, "0007")
    m = await MerchantService(db, clock).create("행복치과")
    prev = GENESIS
    async with db.transaction() as s:
        for i in range(1, n + 1):
            c = consent(m.id, i, clock)
            row = ConsentRecord(
                seq=i, id=f"cns_old{i}", merchant_id=m.id, call_request_id=c.call_request_id,
                kind=c.kind, did=c.did, caller_id=c.caller_id, call_id=c.call_id,
                call_started_at=c.call_started_at, decided_at=c.decided_at,
                prompts={"played": [{"prompt_id": "pay.confirm", "sha256": f"{i:064x}"}]},
                key_pressed="1", details=c.details, prev_hash=prev, created_at=clock.now(),
            )  # fmt: skip
            row.hash = record_hash(row)
            values = {col.key: getattr(row, col.key) for col in ConsentRecord.__table__.c}
            del values["mac"]  # no such column before 0008
            await s.execute(insert(ConsentRecord.__table__).values(**values))
            prev = row.hash
    await migrate.upgrade(db)
    return m.id


async def _downgrade(db: Database, revision: str) -> None:
    from alembic import command

    cfg = migrate.alembic_config()

    def down(conn: object) -> None:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(down)


async def test_upgrade_in_place_seals_the_existing_records(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    m = await legacy_records(db, clock, 4)
    ledger = ledger_for(db, clock, tmp_path)
    before = await ledger.verify()
    assert not before.ok
    assert "not sealed" in (before.problem or "")
    assert not ledger.keys.exists()
    await ledger.append(consent(m, 5, clock))  # the first append seals (as the engine start does)
    result = await ledger.verify()
    assert (result.ok, result.records, result.sealed_through) == (True, 5, 4), result.lines()
    info = await ledger.seal()
    assert (info.created, info.sealed_through, info.note) == (False, 4, None)
    # rewriting a sealed record, hashes recomputed, is caught by the seal
    await rewrite(db, 2, "3", mac_key=None)
    broken = await ledger.verify()
    assert not broken.ok
    assert any("from before keyed sealing changed since they were sealed" in p.reason
               for p in broken.problems)  # fmt: skip
    assert any(p.seq == 5 and "MAC does not match" in p.reason for p in broken.problems)


async def test_a_broken_chain_is_not_sealed_unless_an_operator_acknowledges(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    m = await legacy_records(db, clock, 3)
    await as_admin(db, "UPDATE consent_records SET key_pressed = '3' WHERE seq = 2")
    ledger = ledger_for(db, clock, tmp_path)
    with pytest.raises(IntegrityViolation, match="acknowledge-broken"):
        await ledger.append(consent(m, 4, clock))
    async with db.sessions() as s:
        assert await s.scalar(text("SELECT count(*) FROM consent_records")) == 3
        assert await s.scalar(text("SELECT count(*) FROM consent_seals")) == 0
    info = await ledger.seal(acknowledge_broken=True)
    assert info.created
    assert info.note is not None
    assert "record 2" in info.note
    await ledger.append(consent(m, 4, clock))
    result = await ledger.verify()
    assert result.ok, result.lines()
    assert result.notes
    assert "record 2: hash does not match content" in result.notes[0]


async def test_downgrade_below_0008_is_refused_once_sealed(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    await chain(db, clock, tmp_path, 1)
    with pytest.raises(RuntimeError, match="refusing to downgrade"):
        await _downgrade(db, "0007")


# --------------------------------------------------------------------------- export


async def test_export_carries_macs_a_checkpoint_and_a_signed_attestation(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    ledger = await chain(db, clock, tmp_path, 4)
    m = await _merchant(db)
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


async def test_downgrade_to_0007_keeps_the_append_only_triggers(
    db: Database, clock: FakeClock
) -> None:
    """SQLite rebuilds the table to drop ``mac``, which drops its triggers: 0008's
    downgrade puts 0001's back."""
    await legacy_records(db, clock, 1)
    await _downgrade(db, "0007")
    for sql in ("UPDATE consent_records SET key_pressed = '2'", "DELETE FROM consent_records"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.transaction() as s:
                await s.execute(text(sql))
