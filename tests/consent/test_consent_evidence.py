"""Consent evidence against a database admin with full access, on SQLite and PostgreSQL:
each test does the attack — triggers dropped or disabled, records rewritten with their
hashes (and even MACs under a key of the attacker's) recomputed, the newest record
deleted, a forged one inserted in the middle, the table truncated — and the evidence
(keyed MAC chain, signed checkpoints) shows it. Plus: TRUNCATE and MAC-less inserts
refused by the database, checkpoints altered, forged or from another deployment
refused, the upgrade of a database holding records from before keyed MACs, key file
mistakes, and the export a merchant checks offline.

This module: the chain. The checkpoints, the upgrade and the export are their
neighbours in this folder."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError

from ivr.clock import FakeClock
from ivr.consent.evidence import make_checkpoint
from ivr.consent.keys import LEDGER, ConsentKeys
from ivr.consent.ledger import ConsentLedger
from ivr.consent.records import record_hash
from ivr.errors import ConfigError, IntegrityViolation
from ivr.merchants.service import MerchantService
from ivr.store.db import Database
from ivr.store.tables import ConsentRecord, ConsentSeal
from tests.consent.support import as_admin, chain, consent, refused, rewrite
from vault.evidence import EvidenceKey

pytestmark = pytest.mark.anyio


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
    await refused(db, "TRUNCATE consent_records", "TRUNCATE merchants CASCADE",
                  "TRUNCATE consent_seals")  # fmt: skip
    async with db.sessions() as s:
        assert await s.scalar(text("SELECT count(*) FROM consent_records")) == 2


async def test_seal_and_macless_records_are_refused_by_the_database(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    await chain(db, clock, tmp_path, 1)
    await refused(db, "UPDATE consent_seals SET note = 'x'", "DELETE FROM consent_seals",
                  "UPDATE consent_records SET mac = NULL")  # fmt: skip
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
