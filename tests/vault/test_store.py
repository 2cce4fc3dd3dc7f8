"""The vault's own database, on SQLite and PostgreSQL: schema on open, the KEK registry,
group-committed inserts, compare-and-swap re-wrapping, erase, append-only audit."""

from __future__ import annotations

import asyncio
import functools
import os
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from ivr.clock import FakeClock
from tests.vault.vault_helpers import (
    CANARY,
    NOW,
    KekSetup,
    audit_key,
    build_vault,
    random_card,
    wrong_births_at_once,
)
from vault.crypto import EncryptedRecord
from vault.errors import TokenNotFound, VaultConfigError
from vault.models import CardMetadata
from vault.rows import AuditRow, StoredRecord
from vault.schema import SCHEMA_VERSION, metadata
from vault.store import VaultStore
from vault.tokens import new_token

pytestmark = pytest.mark.anyio


def _record(kek_id: str, merchant: str = "mer_1") -> StoredRecord:
    meta = CardMetadata(new_token(), merchant, "401288", "1881", "visa", None, None,
                        "personal", "f" * 64, NOW)  # fmt: skip
    return StoredRecord(meta, EncryptedRecord(kek_id, b"w" * 60, b"n" * 12, b"c" * 45))


def _audit(token: str | None, action: str = "tokenize") -> AuditRow:
    return AuditRow(NOW, "test", "in-process", action, "", token, "mer_1")


async def _opened(url: str) -> VaultStore:
    """A store on ``url`` with the audit key set and KEK v1 current."""
    s = VaultStore(url)
    await s.open()
    s.use_audit_key(audit_key())
    await s.sync_keks("file", "v1-00000001", NOW)
    return s


@pytest.fixture
async def store(vault_db_url: str) -> AsyncIterator[VaultStore]:
    s = await _opened(vault_db_url)
    yield s
    await s.close()


async def test_open_creates_every_table_and_is_idempotent(vault_db_url: str) -> None:
    for _ in range(2):
        s = VaultStore(vault_db_url)
        await s.open()
        names = await s.read(lambda c: set(inspect(c).get_table_names()))
        version = await s.read(
            lambda c: c.execute(text("SELECT value FROM vault_meta WHERE key='schema_version'"))
            .scalar()
        )  # fmt: skip
        await s.close()
    assert set(metadata.tables) <= names
    assert version == SCHEMA_VERSION


async def test_newer_schema_version_is_refused(vault_db_url: str) -> None:
    s = VaultStore(vault_db_url)
    await s.open()
    await s.write(lambda c: c.execute(text("UPDATE vault_meta SET value='99'")))
    await s.close()
    s = VaultStore(vault_db_url)
    with pytest.raises(VaultConfigError, match="schema version 99"):
        await s.open()
    await s.close()


async def test_insert_get_delete(store: VaultStore) -> None:
    rec = _record("v1-00000001")
    assert await store.insert(rec, _audit(rec.meta.token))
    got = await store.get(rec.meta.token, "mer_1")
    assert got == rec
    assert await store.get(rec.meta.token, "mer_2") is None  # scoped by merchant
    assert not await store.delete(rec.meta.token, "mer_2", _audit(rec.meta.token, "delete"))
    assert await store.delete(rec.meta.token, "mer_1", _audit(rec.meta.token, "delete"))
    assert await store.get(rec.meta.token, "mer_1") is None
    assert [e.action for e in await store.audit_entries(token=rec.meta.token)] == [
        "delete",
        "tokenize",
    ]


async def test_insert_refuses_a_kek_that_is_not_current(store: VaultStore) -> None:
    await store.sync_keks("file", "v2-00000002", NOW)  # v1 becomes retiring
    old, new, unknown = _record("v1-00000001"), _record("v2-00000002"), _record("v9-00000009")
    results = await asyncio.gather(
        store.insert(old, _audit(old.meta.token)),
        store.insert(new, _audit(new.meta.token)),
        store.insert(unknown, _audit(unknown.meta.token)),
    )
    assert list(results) == [False, True, False]
    assert await store.get(old.meta.token, "mer_1") is None
    assert await store.record_count() == 1
    # the refused writes left no audit rows either
    assert [e.token for e in await store.audit_entries()] == [new.meta.token]


async def test_group_commit_under_load(store: VaultStore) -> None:
    records = [_record("v1-00000001") for _ in range(500)]
    results = await asyncio.gather(*(store.insert(r, _audit(r.meta.token)) for r in records))
    assert all(results)
    assert await store.record_count() == 500
    assert len(await store.audit_entries(limit=1000)) == 500


async def test_registry_states(store: VaultStore) -> None:
    await store.sync_keks("file", "v2-00000002", NOW)
    states = {r.kek_id: r.state for r in await store.keks()}
    assert states == {"v1-00000001": "retiring", "v2-00000002": "current"}
    rec = _record("v2-00000002")
    await store.insert(rec, _audit(rec.meta.token))
    assert not await store.retire_if_unused("v2-00000002", NOW)  # current, and used
    assert await store.retire_if_unused("v1-00000001", NOW)
    assert {r.kek_id: r.state for r in await store.keks()}["v1-00000001"] == "retired"
    with pytest.raises(VaultConfigError, match="restored an old key store"):
        await store.sync_keks("file", "v1-00000001", NOW)


async def test_compare_and_swap_only_touches_rows_still_under_the_old_kek(
    store: VaultStore,
) -> None:
    a, b, c = (_record("v1-00000001") for _ in range(3))
    for r in (a, b, c):
        await store.insert(r, _audit(r.meta.token))
    await store.sync_keks("file", "v2-00000002", NOW)
    await store.delete(c.meta.token, "mer_1", _audit(c.meta.token, "delete"))
    rows = await store.rewrap_candidates(["v1-00000001"], "", 10)
    assert sorted(t for t, _, _ in rows) == sorted([a.meta.token, b.meta.token])
    await store.compare_and_swap_keys([
        (a.meta.token, "v1-00000001", "v2-00000002", b"x" * 60),
        (b.meta.token, "v9-99999999", "v2-00000002", b"y" * 60),  # stale: not applied
        (c.meta.token, "v1-00000001", "v2-00000002", b"z" * 60),  # deleted: nothing
    ])  # fmt: skip
    got_a = await store.get(a.meta.token, "mer_1")
    got_b = await store.get(b.meta.token, "mer_1")
    assert got_a is not None
    assert got_b is not None
    assert (got_a.sealed.kek_id, got_a.sealed.wrapped_key) == ("v2-00000002", b"x" * 60)
    assert got_b.sealed == b.sealed
    assert await store.get(c.meta.token, "mer_1") is None
    assert await store.count_by_kek() == {"v1-00000001": 1, "v2-00000002": 1}


async def test_audit_is_append_only(store: VaultStore) -> None:
    await store.add_audit(_audit(None, "reveal"))
    statements = ["UPDATE vault_audit SET why = 'x'", "DELETE FROM vault_audit"]
    if store.is_postgres:
        statements.append("TRUNCATE vault_audit")
    for sql in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            await store.write(functools.partial(_execute, sql))
    assert len(await store.audit_entries()) == 1


def _execute(sql: str, conn: Connection) -> None:
    conn.execute(text(sql))


PRAGMAS = ("secure_delete", "journal_mode", "synchronous")


def _modes(path: Path) -> dict[str, int]:
    out = {s: stat.S_IMODE(os.stat(str(path) + s).st_mode) for s in ("", "-wal", "-shm")}
    out["dir"] = stat.S_IMODE(os.stat(path.parent).st_mode)
    return out


async def test_sqlite_files_are_private_and_secure_delete_is_on(sqlite_url: str) -> None:
    store = await _opened(sqlite_url)
    rec = _record("v1-00000001")
    await store.insert(rec, _audit(rec.meta.token))
    path = Path(make_url(sqlite_url).database or "")
    for run in (store.write, store.read):  # the writer and a reader connection
        pragmas = await run(lambda c: [c.exec_driver_sql(f"PRAGMA {p}").scalar() for p in PRAGMAS])
        assert pragmas == [1, "wal", 2]  # 2 = FULL
    assert _modes(path) == {"": 0o600, "-wal": 0o600, "-shm": 0o600, "dir": 0o700}
    await store.close()


async def test_erase_removes_the_ciphertext_from_the_sqlite_files(sqlite_url: str) -> None:
    store = await _opened(sqlite_url)
    rec = _record("v1-00000001")
    marker = os.urandom(8).hex().encode()  # a recognisable "ciphertext"
    rec = StoredRecord(rec.meta, EncryptedRecord("v1-00000001", b"w" * 60, b"n" * 12,
                                                 marker * 8))  # fmt: skip
    await store.insert(rec, _audit(rec.meta.token))
    path = Path(make_url(sqlite_url).database or "")

    def files_contain() -> bool:
        return any(marker in Path(str(path) + s).read_bytes()
                   for s in ("", "-wal") if Path(str(path) + s).exists())  # fmt: skip

    assert files_contain()
    await store.delete(rec.meta.token, "mer_1", _audit(rec.meta.token, "delete"))
    assert not files_contain()
    await store.close()
    assert not files_contain()


async def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(VaultConfigError):
        VaultStore("sqlite+aiosqlite:///:memory:")
    with pytest.raises(VaultConfigError):
        VaultStore("mysql://x/y")


async def test_vault_on_both_databases(vault_db_url: str, kek: KekSetup) -> None:
    """The whole vault (not just the store) on SQLite and PostgreSQL."""
    vault = await build_vault(
        vault_db_url, kek.provider, FakeClock(NOW), audit_key_file=kek.audit_key_file
    )
    try:
        metas = [await vault.tokenize("mer_1", random_card(i), who="t") for i in range(20)]
        meta = await vault.tokenize("mer_1", CANARY, who="t")
        async with vault.reveal(meta.token, "mer_1", who="t", why="check") as card:
            assert card == CANARY
        await vault.delete(metas[0].token, "mer_1", who="t", why="erase")
        with pytest.raises(TokenNotFound):
            await vault.metadata(metas[0].token, "mer_1")
        assert (await vault.status()).records == 20
    finally:
        await vault.close()


async def test_timestamps_round_trip_as_utc(store: VaultStore) -> None:
    rec = _record("v1-00000001")
    await store.insert(rec, _audit(rec.meta.token))
    got = await store.get(rec.meta.token, "mer_1")
    assert got is not None
    assert got.meta.created_at == NOW
    assert got.meta.created_at.tzinfo is not None
    assert (await store.audit_entries())[0].at == datetime(2026, 1, 15, 3, 0, tzinfo=UTC)


async def test_the_birth_check_ceiling_holds_under_concurrency_on_both_databases(
    vault_db_url: str, kek: KekSetup
) -> None:
    """``get_for_check`` counts and reserves under the record's lock (``FOR UPDATE`` on
    PostgreSQL, the write lock on SQLite): 16 wrong guesses at once, ceiling 5."""
    vault = await build_vault(
        vault_db_url, kek.provider, FakeClock(NOW), audit_key_file=kek.audit_key_file
    )
    vault.verify_limit = 5
    try:
        meta = await vault.tokenize("mer_1", CANARY, who="t")
        outcomes = await wrong_births_at_once(vault, meta.token, 16, "7001")
        assert outcomes == ["limited"] * 11 + ["mismatch"] * 5
    finally:
        await vault.close()
