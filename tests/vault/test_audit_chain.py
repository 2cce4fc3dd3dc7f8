"""The vault audit log against a database admin with full access, on SQLite and
PostgreSQL: triggers dropped or disabled, a row changed (and its MAC recomputed under
a key of the attacker's), the newest row deleted, a forged row inserted in the middle,
the table truncated — each shows in ``audit_verify`` or against a signed checkpoint.
TRUNCATE, DELETE, UPDATE and unchained inserts are refused by the database. The chain
works the same under both KEK providers, seals the rows of a database from before it,
and refuses a key file it was not written with."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError

from ivr.clock import FakeClock
from tests.vault.vault_helpers import CANARY, NOW, KekSetup, build_vault, make_kek, random_card
from vault.audit_chain import LEDGER, content_hash
from vault.errors import AuditChainBroken, VaultConfigError
from vault.evidence import GENESIS, Checkpoint, CheckpointDir, EvidenceKey, EvidenceKeyFile
from vault.schema import vault_audit
from vault.service import LocalVault

pytestmark = pytest.mark.anyio

WHO = {"who": "engine", "why": "billing key"}


@pytest.fixture
def file_kek(tmp_path: Path) -> KekSetup:
    return make_kek("file", tmp_path, None)


@asynccontextmanager
async def audited_vault(url: str, kek: KekSetup, rows: int = 2) -> AsyncIterator[LocalVault]:
    """A vault whose audit log has ``2 * rows`` rows: tokenize and reveal per card."""
    vault = await build_vault(url, kek.provider, FakeClock(NOW), audit_key_file=kek.audit_key_file)
    try:
        for i in range(rows):
            meta = await vault.tokenize("mer_1", random_card(i), who="engine")
            async with vault.reveal(meta.token, "mer_1", **WHO):
                pass
        yield vault
    finally:
        await vault.close()


def _admin(conn: Connection, *statements: str, restore: bool = True) -> None:
    """As a database admin: the append-only triggers out of the way (PostgreSQL: for
    this transaction; SQLite: dropped), then ``statements``."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE vault_audit DISABLE TRIGGER USER"))
    else:
        for name in ("no_update", "no_delete", "chained"):
            conn.execute(text(f"DROP TRIGGER IF EXISTS vault_audit_{name}"))
    for sql in statements:
        conn.execute(text(sql))
    if restore and conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE vault_audit ENABLE TRIGGER USER"))


async def as_admin(vault: LocalVault, *statements: str) -> None:
    await vault.store.write(lambda c: _admin(c, *statements))


async def remac(vault: LocalVault, key: EvidenceKey, from_seq: int) -> None:
    """Recompute every MAC from ``from_seq`` on under ``key`` (the attacker's)."""

    def work(conn: Connection) -> None:
        _admin(conn, restore=False)
        rows = conn.execute(select(vault_audit).order_by(vault_audit.c.seq)).all()
        prev = GENESIS
        for r in rows:
            mac = r.mac
            if r.seq >= from_seq:
                values = {k: getattr(r, k) for k in ("at", "who", "peer", "action", "why",
                                                      "token", "merchant_id")}  # fmt: skip
                mac = key.mac(r.seq, content_hash(r.seq, values), prev)
                conn.execute(text("UPDATE vault_audit SET mac = :m WHERE seq = :s"),
                             {"m": mac, "s": r.seq})  # fmt: skip
            prev = mac
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE vault_audit ENABLE TRIGGER USER"))

    await vault.store.write(work)


async def rows(vault: LocalVault) -> list[Any]:
    return await vault.store.read(
        lambda c: c.execute(select(vault_audit).order_by(vault_audit.c.id)).all()
    )


# --------------------------------------------------------------------------- the chain


async def test_every_row_is_chained_under_either_kek_provider(
    vault_db_url: str, kek: KekSetup
) -> None:
    async with audited_vault(vault_db_url, kek, rows=2) as vault:
        meta = await vault.tokenize("mer_1", CANARY, who="engine")
        await vault.delete(meta.token, "mer_1", who="cli:op", why="erase test")
        found = await rows(vault)
        assert [r.seq for r in found] == [1, 2, 3, 4, 5, 6]
        assert [r.action for r in found] == ["tokenize", "reveal"] * 2 + ["tokenize", "delete"]
        key = vault.audit_key
        assert key is not None
        prev = GENESIS
        for r in found:
            values = {k: getattr(r, k) for k in ("at", "who", "peer", "action", "why", "token",
                                                  "merchant_id")}  # fmt: skip
            assert r.mac == key.mac(r.seq, content_hash(r.seq, values), prev)
            prev = r.mac
        report = await vault.audit_verify()
        assert (report.ok, report.rows, report.head_seq, report.head_mac) == (True, 6, 6, prev)
        cp = await vault.audit_checkpoint()
        assert (cp.ledger, cp.seq, cp.count, cp.head_mac) == (LEDGER, 6, 6, prev)
        assert (await vault.audit_verify([("cp", cp)])).checkpoints == 1
        assert kek.audit_key_file.stat().st_mode & 0o777 == 0o600


async def test_a_changed_row_is_detected(vault_db_url: str, file_kek: KekSetup) -> None:
    async with audited_vault(vault_db_url, file_kek) as vault:
        await as_admin(vault, "UPDATE vault_audit SET why = 'routine' WHERE seq = 2")
        report = await vault.audit_verify()
        assert not report.ok
        assert report.lines() == [
            "row 2: MAC does not match: changed, inserted, or MAC'ed with another key"
        ]
        with pytest.raises(AuditChainBroken):
            await vault.audit_checkpoint()


async def test_macs_recomputed_with_a_wrong_key_are_detected(
    vault_db_url: str, file_kek: KekSetup
) -> None:
    async with audited_vault(vault_db_url, file_kek) as vault:
        await as_admin(vault, "UPDATE vault_audit SET who = 'nobody' WHERE seq = 2")
        await remac(vault, EvidenceKey(secrets.token_bytes(32), LEDGER), from_seq=2)
        report = await vault.audit_verify()
        assert [p.seq for p in report.problems] == [2, 3, 4]


async def test_deleted_newest_row_is_detected_against_a_checkpoint(
    vault_db_url: str, file_kek: KekSetup, tmp_path: Path
) -> None:
    async with audited_vault(vault_db_url, file_kek) as vault:
        saved = CheckpointDir(tmp_path / "cps", LEDGER)
        cp = await vault.audit_checkpoint(saved)
        await as_admin(vault, "DELETE FROM vault_audit WHERE seq = 4")
        assert (await vault.audit_verify()).ok  # the chain alone cannot tell
        report = await vault.audit_verify([("kept.json", cp)])
        [line] = report.lines()
        assert line.startswith("checkpoint kept.json: records deleted: the checkpoint of ")
        assert "covers 4 record(s) up to seq 4; the chain now holds 3, up to seq 3" in line
        with pytest.raises(AuditChainBroken, match="records deleted"):
            await vault.audit_checkpoint(saved)  # nothing signed over the shorter log


async def test_forged_row_inserted_in_the_middle_is_detected(
    vault_db_url: str, file_kek: KekSetup
) -> None:
    async with audited_vault(vault_db_url, file_kek) as vault:
        cp = await vault.audit_checkpoint()
        rogue = EvidenceKey(secrets.token_bytes(32), LEDGER)
        shift = [f"UPDATE vault_audit SET seq = {n + 1} WHERE seq = {n}" for n in (4, 3, 2)]
        await as_admin(vault, *shift, "INSERT INTO vault_audit (at, who, peer, action, why, "
                       "token, merchant_id, seq, mac) SELECT at, 'engine', peer, 'reveal', "
                       f"'billing key', token, merchant_id, 2, '{rogue.mac(2, 'x', 'y')}' "
                       "FROM vault_audit WHERE seq = 1")  # fmt: skip
        report = await vault.audit_verify([("kept.json", cp)])
        assert [p.seq for p in report.problems[:4]] == [2, 3, 4, 5]
        assert report.lines()[-1].startswith("checkpoint kept.json: record 4 is not the head")


async def test_the_database_refuses_changes_truncate_and_unchained_rows(
    vault_db_url: str, file_kek: KekSetup
) -> None:
    async with audited_vault(vault_db_url, file_kek, rows=1) as vault:
        refused = ["UPDATE vault_audit SET why = 'x'", "DELETE FROM vault_audit",
                   "INSERT INTO vault_audit (at, who, peer, action, why) "
                   "VALUES (CURRENT_TIMESTAMP, 'x', 'x', 'reveal', 'x')"]  # fmt: skip
        if vault.store.is_postgres:
            refused.append("TRUNCATE vault_audit")
        for sql in refused:
            with pytest.raises(DBAPIError, match=r"append-only|must be chained"):
                await vault.store.write(lambda c, sql=sql: c.execute(text(sql)))
        assert len(await rows(vault)) == 2


async def test_truncation_and_unchained_rows_behind_the_triggers_are_detected(
    vault_db_url: str, file_kek: KekSetup
) -> None:
    async with audited_vault(vault_db_url, file_kek) as vault:
        cp = await vault.audit_checkpoint()
        copy = "SELECT at, who, peer, action, why FROM vault_audit WHERE seq = 1"
        await as_admin(vault, f"INSERT INTO vault_audit (at, who, peer, action, why) {copy}")
        assert (await vault.audit_verify()).lines() == [
            "1 row(s) carry no MAC and no seal covers them: written behind the vault's back"
        ]
        await as_admin(vault, "DELETE FROM vault_audit")
        report = await vault.audit_verify([("kept.json", cp)])
        assert report.lines()[0].startswith("checkpoint kept.json: records deleted")


async def test_altered_forged_and_foreign_checkpoints_are_refused(
    vault_db_url: str, file_kek: KekSetup, tmp_path: Path
) -> None:
    async with audited_vault(vault_db_url, file_kek) as vault:
        other = await build_vault(f"sqlite+aiosqlite:///{tmp_path / 'other' / 'v.db'}",
                                  make_kek("file", tmp_path / "o", None).provider, FakeClock(NOW),
                                  audit_key_file=tmp_path / "o" / "audit.key")  # fmt: skip
        try:
            cp = await vault.audit_checkpoint()
            altered = Checkpoint.parse(json.dumps(json.loads(cp.to_json()) | {"count": 3}))
            doc = json.loads(cp.to_json())
            doc["signature"] = doc["signature"][:-4] + "AAA="
            forged = Checkpoint.parse(json.dumps(doc))
            await other.tokenize("mer_1", CANARY, who="engine")
            foreign = await other.audit_checkpoint()
            report = await vault.audit_verify(
                [("altered", altered), ("forged", forged), ("foreign", foreign)]
            )
            lines = report.lines()
            assert lines[0] == ("checkpoint altered: refused: signature does not verify: the "
                                "checkpoint was altered or forged")  # fmt: skip
            assert lines[1].startswith("checkpoint forged: refused: signature does not verify")
            assert lines[2].startswith("checkpoint foreign: refused: signed by another key")
            assert report.checkpoints == 0
        finally:
            await other.close()


async def test_concurrent_writers_keep_one_chain(vault_db_url: str, file_kek: KekSetup) -> None:
    """Two vault processes (here: two stores) on one database."""
    a = await build_vault(vault_db_url, file_kek.provider, FakeClock(NOW),
                          audit_key_file=file_kek.audit_key_file)  # fmt: skip
    b = await build_vault(vault_db_url, file_kek.provider, FakeClock(NOW),
                          audit_key_file=file_kek.audit_key_file)  # fmt: skip
    try:
        await asyncio.gather(*(v.tokenize("mer_1", random_card(i), who="engine")
                               for i in range(40) for v in (a, b)))  # fmt: skip
        report = await a.audit_verify()
        assert (report.ok, report.rows, report.head_seq) == (True, 80, 80), report.lines()
    finally:
        await a.close()
        await b.close()


# --------------------------------------------------------------------------- keys


async def test_the_vault_refuses_another_or_a_lost_audit_key(
    vault_db_url: str, file_kek: KekSetup, tmp_path: Path
) -> None:
    async with audited_vault(vault_db_url, file_kek, rows=1):
        pass  # a chained log, and the vault closed
    another = tmp_path / "another" / "audit.key"
    EvidenceKeyFile(another, ledger=LEDGER).create()
    with pytest.raises(VaultConfigError, match=r"chained under key .* but vault\.audit_key_file"):
        await build_vault(vault_db_url, file_kek.provider, FakeClock(NOW),
                          audit_key_file=another)  # fmt: skip
    file_kek.audit_key_file.unlink()
    with pytest.raises(VaultConfigError, match="audit key file is missing"):
        await build_vault(vault_db_url, file_kek.provider, FakeClock(NOW),
                          audit_key_file=file_kek.audit_key_file)  # fmt: skip
    assert not file_kek.audit_key_file.exists()


# --------------------------------------------------------------------------- upgrade


def _to_schema_1(conn: Connection) -> None:
    """Make the database what the release before the chain left (schema version 1)."""
    on = " ON vault_audit" if conn.dialect.name == "postgresql" else ""
    conn.execute(text(f"DROP TRIGGER IF EXISTS vault_audit_chained{on}"))
    conn.execute(text("DROP INDEX ix_vault_audit_seq"))
    conn.execute(text("ALTER TABLE vault_audit DROP COLUMN seq"))
    conn.execute(text("ALTER TABLE vault_audit DROP COLUMN mac"))
    conn.execute(text("DELETE FROM vault_meta WHERE key = 'audit_key_id'"))
    conn.execute(text("UPDATE vault_meta SET value = '1' WHERE key = 'schema_version'"))
    for i in range(3):
        conn.execute(text("INSERT INTO vault_audit (at, who, peer, action, why, token, "
                          "merchant_id) VALUES (:at, 'engine', 'in-process', 'reveal', "
                          "'old', :tok, 'mer_1')"), {"at": NOW, "tok": f"tok_old{i}"})  # fmt: skip


async def test_upgrade_seals_the_rows_written_before_the_chain(
    vault_db_url: str, file_kek: KekSetup, tmp_path: Path
) -> None:
    from vault.store import VaultStore

    store = VaultStore(vault_db_url)
    await store.open()
    await store.write(_to_schema_1)
    await store.close()
    vault = await build_vault(vault_db_url, file_kek.provider, FakeClock(NOW),
                              audit_key_file=file_kek.audit_key_file)  # fmt: skip
    try:
        await vault.tokenize("mer_1", CANARY, who="engine")
        found = await rows(vault)
        assert [r.seq for r in found] == [None, None, None, 1, 2]
        assert found[3].action == "audit_sealed"
        assert found[3].why.startswith("3 row(s) written before the chain began; sha256 ")
        report = await vault.audit_verify()
        assert (report.ok, report.rows, report.sealed, report.head_seq) == (True, 5, 3, 2)
        await as_admin(vault, "UPDATE vault_audit SET why = 'changed' WHERE token = 'tok_old1'")
        assert (await vault.audit_verify()).lines() == [
            "the 3 row(s) written before the chain began changed since they were sealed "
            "(now 3 such rows)"
        ]
    finally:
        await vault.close()
