"""The vault's fast paths keep their contracts: group commit (batches, failures,
cancellation), the SQLite insert that bypasses SQLAlchemy (same stored text as
SQLAlchemy would write), audited reads (record and audit row in one transaction), the
reusable HMAC state of the fingerprinter, the one-call token generator, BIN caching."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from tests.vault.vault_helpers import CANARY, NOW, audit_key, random_card
from vault import bins
from vault.batching import GroupCommit
from vault.card import random_into
from vault.crypto import EncryptedRecord
from vault.models import CardMetadata
from vault.rows import AuditRow, StoredRecord
from vault.service import LocalVault
from vault.store import VaultStore
from vault.tokens import TOKEN_RE, Fingerprinter, new_token

pytestmark = pytest.mark.anyio

KEK = "v1-00000001"


def _record(token: str, merchant: str = "mer_1", at: datetime = NOW) -> StoredRecord:
    meta = CardMetadata(token, merchant, "401288", "1881", "visa", None, None, "personal",
                        "f" * 64, at)  # fmt: skip
    return StoredRecord(meta, EncryptedRecord(KEK, b"w" * 60, b"n" * 12, b"c" * 45))


def _audit(token: str, action: str = "tokenize", merchant: str = "mer_1") -> AuditRow:
    return AuditRow(NOW, "test", "in-process", action, "why", token, merchant)


@pytest.fixture
async def store(vault_db_url: str) -> AsyncIterator[VaultStore]:
    s = VaultStore(vault_db_url)
    await s.open()
    s.use_audit_key(audit_key())
    await s.sync_keks("file", KEK, NOW)
    yield s
    await s.close()


# --------------------------------------------------------------------------- group commit


async def test_concurrent_submits_share_a_flush() -> None:
    batches: list[list[int]] = []

    async def flush(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        await asyncio.sleep(0)
        return [i * 10 for i in items]

    commit: GroupCommit[int, int] = GroupCommit(flush)
    results = await asyncio.gather(*(commit.submit(i) for i in range(100)))
    assert results == [i * 10 for i in range(100)]
    assert len(batches) < 10  # shared, not one flush per caller
    assert sorted(i for b in batches for i in b) == list(range(100))
    await commit.close()


async def test_a_failed_flush_fails_its_batch_only() -> None:
    calls = 0

    async def flush(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk full")
        return list(items)

    commit: GroupCommit[int, int] = GroupCommit(flush)
    first = await asyncio.gather(*(commit.submit(i) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in first)
    assert await commit.submit(7) == 7  # the next batch is not affected
    await commit.close()


async def test_a_cancelled_caller_does_not_cancel_its_write() -> None:
    flushed: list[int] = []
    release = asyncio.Event()

    async def flush(items: Sequence[int]) -> list[int]:
        await release.wait()
        flushed.extend(items)
        return list(items)

    commit: GroupCommit[int, int] = GroupCommit(flush)
    caller = asyncio.create_task(commit.submit(1))
    other = asyncio.create_task(commit.submit(2))
    await asyncio.sleep(0.01)  # both are in the batch being flushed
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    assert await other == 2
    await commit.close()
    assert flushed == [1, 2]


# --------------------------------------------------------------------------- store


async def test_fast_insert_stores_what_sqlalchemy_would(sqlite_url: str) -> None:
    """The SQLite insert path formats timestamps itself; they must read back the same,
    compare the same in SQL, and look exactly like SQLAlchemy's (microseconds always)."""
    store = VaultStore(sqlite_url)
    await store.open()
    store.use_audit_key(audit_key())
    await store.sync_keks("file", KEK, NOW)  # written by SQLAlchemy Core
    odd = datetime(2026, 1, 15, 12, 34, 56, 789, tzinfo=UTC)
    try:
        for token, at in (("tok_" + "a" * 24, NOW), ("tok_" + "b" * 24, odd)):
            assert await store.insert(_record(token, at=at), _audit(token))
            got = await store.get(token, "mer_1")
            assert got is not None
            assert got.meta.created_at == at
        stored = await store.read(
            lambda c: [
                c.exec_driver_sql(sql).scalars().all()
                for sql in (
                    "SELECT created_at FROM vault_keks",
                    "SELECT created_at FROM vault_records ORDER BY token",
                    "SELECT at FROM vault_audit ORDER BY id",
                )
            ]
        )
    finally:
        await store.close()
    assert stored == [
        ["2026-01-15 03:00:00.000000"],
        ["2026-01-15 03:00:00.000000", "2026-01-15 12:34:56.000789"],
        ["2026-01-15 03:00:00.000000", "2026-01-15 03:00:00.000000"],
    ]


async def test_audited_read_audits_only_what_it_returns(store: VaultStore) -> None:
    token = new_token()
    assert await store.insert(_record(token), _audit(token))
    assert await store.get_audited(_audit(token, "reveal", merchant="mer_2")) is None
    assert await store.get_audited(_audit(new_token(), "reveal")) is None
    got = await store.get_audited(_audit(token, "reveal"))
    assert got is not None
    assert got.meta.token == token
    entries = await store.audit_entries(limit=10)
    assert [(e.action, e.token, e.merchant_id) for e in entries] == [
        ("reveal", token, "mer_1"),
        ("tokenize", token, "mer_1"),
    ]


async def test_inserts_and_audited_reads_batched_together(store: VaultStore) -> None:
    seeded = [new_token() for _ in range(50)]
    for t in seeded:
        await store.insert(_record(t), _audit(t))
    fresh = [new_token() for _ in range(50)]
    results = await asyncio.gather(
        *(store.insert(_record(t), _audit(t)) for t in fresh),
        *(store.get_audited(_audit(t, "reveal")) for t in seeded),
    )
    assert results[:50] == [True] * 50
    assert [r.meta.token if isinstance(r, StoredRecord) else None for r in results[50:]] == seeded
    actions = Counter(e.action for e in await store.audit_entries(limit=1000))
    assert actions == {"tokenize": 100, "reveal": 50}


async def test_close_is_idempotent(sqlite_url: str) -> None:
    store = VaultStore(sqlite_url)
    await store.open()
    await store.close()
    await store.close()


async def test_writes_and_reads_run_work_functions(store: VaultStore) -> None:
    assert await store.write(lambda c: c.execute(text("SELECT 41 + 1")).scalar()) == 42
    assert await store.read(lambda c: c.execute(text("SELECT 'ok'")).scalar()) == "ok"


# --------------------------------------------------------------------------- crypto bits


def test_fingerprint_is_the_documented_hmac() -> None:
    key = random_into(32)
    expected = hmac.new(bytes(key), b"mer_1\x004012888888881881", hashlib.sha256).hexdigest()
    fp = Fingerprinter(key)
    assert fp.fingerprint("mer_1", "4012888888881881") == expected
    plain = bytearray(b"\x014012888888881881|1230|900101")
    with memoryview(plain)[1:17] as pan:
        assert fp.fingerprint("mer_1", pan) == expected
    assert fp.fingerprint("mer_12", "4012888888881881") != expected
    fp.close()
    assert key == bytearray(32)  # wiped
    with pytest.raises(ValueError, match="closed"):
        fp.fingerprint("mer_1", "4012888888881881")


async def test_tokenize_fingerprints_like_the_fingerprinter(vault: LocalVault) -> None:
    meta = await vault.tokenize("mer_1", CANARY, who="t")
    assert meta.fingerprint == vault.fingerprinter.fingerprint("mer_1", CANARY.pan)


def test_token_characters_are_uniform() -> None:
    counts = Counter("".join(new_token()[4:] for _ in range(4000)))  # 96,000 characters
    assert set(counts) == set("abcdefghijklmnopqrstuvwxyz234567")
    assert all(2500 < n < 3500 for n in counts.values())  # 3,000 expected each
    assert all(TOKEN_RE.fullmatch(new_token()) for _ in range(100))


def test_bin_lookup_depends_on_bin6_only() -> None:
    assert bins.lookup("4012888888881881") == bins.lookup("4012880000000000")
    assert bins.lookup("4012888888881881").issuer == "테스트카드"
    assert bins.lookup(random_card(3).pan).brand == "mastercard"
    assert bins.lookup("3530111333300000").brand == "jcb"
