"""Shared pieces of the consent-evidence tests: records, ledgers, and a database admin
who goes around the application (raw SQL, triggers dropped)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import FakeClock
from ivr.consent.keys import LEDGER, ConsentKeys
from ivr.consent.ledger import ConsentInput, ConsentLedger, PlayedPrompt
from ivr.consent.records import GENESIS, record_hash
from ivr.domain.ids import new_id
from ivr.merchants.service import MerchantService
from ivr.store import migrate
from ivr.store.db import Database
from ivr.store.tables import ConsentRecord, ConsentSeal
from vault.evidence import CheckpointDir, EvidenceKey


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


async def any_merchant(db: Database) -> str:
    async with db.sessions() as s:
        return str(await s.scalar(text("SELECT id FROM merchants LIMIT 1")))


async def legacy_records(db: Database, clock: FakeClock, n: int) -> str:
    """Take the database back to 0007 and write records the way that release did."""
    await downgrade_to(db, "0007")
    # the merchant as that release wrote it: only the columns it had (no ORM row)
    mid = new_id("mer")
    async with db.transaction() as s:
        await s.execute(
            text(
                "INSERT INTO merchants (id, name, status, settings, created_at)"
                " VALUES (:id, '행복치과', 'active', '{}', :at)"
            ),
            {"id": mid, "at": clock.now()},
        )
    prev = GENESIS
    async with db.transaction() as s:
        for i in range(1, n + 1):
            c = consent(mid, i, clock)
            row = ConsentRecord(
                seq=i, id=f"cns_old{i}", merchant_id=mid, call_request_id=c.call_request_id,
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
    return mid


async def downgrade_to(db: Database, revision: str) -> None:
    from alembic import command

    cfg = migrate.alembic_config()

    def down(conn: object) -> None:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(down)


async def refused(db: Database, *statements: str) -> None:
    """Each statement fails in the database: the consent tables are append-only."""
    for sql in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.transaction() as s:
                await s.execute(text(sql))
