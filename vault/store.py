"""The vault's own database: SQLite by default (WAL), PostgreSQL by URL.

SQLite gets two engines on the same file: one writer connection (every write
transaction starts with ``BEGIN IMMEDIATE``; concurrent writes of this process queue on
it, other processes wait on the busy timeout) and a small pool of readers that never
block on the writer in WAL mode. ``PRAGMA secure_delete=ON`` makes SQLite overwrite
deleted rows with zeros, and :meth:`VaultStore.delete` checkpoints and truncates the WAL
so the page images holding the deleted row go too (blocks already freed by the file
system are beyond our reach; the wrapped data key of a deleted record becomes useless
for good when its KEK is retired at the next rotation). ``synchronous=FULL``: a token
handed out must survive a power cut. PostgreSQL gets one engine; a deleted row stays in
dead tuples until VACUUM, with the same crypto-shredding argument.

New records are written through :class:`~vault.batching.GroupCommit`. A record may only
be written under the KEK the registry (``vault_keks``) calls current; the check runs in
the inserting transaction (``FOR SHARE`` on PostgreSQL, the write lock on SQLite), so a
rotation that has marked a KEK ``retiring`` never misses a record written under it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, bindparam, delete, event, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vault import schema
from vault.batching import GroupCommit
from vault.crypto import EncryptedRecord
from vault.errors import VaultConfigError, VaultUnavailable
from vault.models import AuditEntry, CardMetadata
from vault.schema import vault_audit, vault_keks, vault_records


@dataclass(frozen=True)
class StoredRecord:
    meta: CardMetadata
    sealed: EncryptedRecord


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    who: str
    peer: str
    action: str
    why: str
    token: str | None
    merchant_id: str | None

    def values(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "who": self.who,
            "peer": self.peer,
            "action": self.action,
            "why": self.why,
            "token": self.token,
            "merchant_id": self.merchant_id,
        }


@dataclass(frozen=True)
class _Write:
    record: StoredRecord | None
    audit: AuditRow


def _record_values(r: StoredRecord) -> dict[str, Any]:
    m, s = r.meta, r.sealed
    return {
        "token": m.token,
        "merchant_id": m.merchant_id,
        "version": s.version,
        "kek_id": s.kek_id,
        "wrapped_key": s.wrapped_key,
        "nonce": s.nonce,
        "ciphertext": s.ciphertext,
        "bin6": m.bin6,
        "last4": m.last4,
        "brand": m.brand,
        "issuer": m.issuer,
        "card_type": m.card_type,
        "owner_type": m.owner_type,
        "fingerprint": m.fingerprint,
        "created_at": m.created_at,
    }


def _meta(row: Any) -> CardMetadata:
    return CardMetadata(
        token=row.token,
        merchant_id=row.merchant_id,
        bin6=row.bin6,
        last4=row.last4,
        brand=row.brand,
        issuer=row.issuer,
        card_type=row.card_type,
        owner_type=row.owner_type,
        fingerprint=row.fingerprint,
        created_at=row.created_at,
    )


class VaultStore:
    def __init__(self, url: str, *, busy_timeout_ms: int = 15_000, pool_size: int = 5) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise VaultConfigError("vault database URL is not a valid SQLAlchemy URL") from None
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            if parsed.database in (None, "", ":memory:"):
                raise VaultConfigError("the vault needs a SQLite file, not an in-memory database")
            _prepare_sqlite_file(Path(parsed.database or ""))
            args = {"timeout": busy_timeout_ms / 1000}
            self.writer = create_async_engine(
                parsed, pool_size=1, max_overflow=0, pool_timeout=300, connect_args=args
            )
            self.reader = create_async_engine(
                parsed, pool_size=pool_size, max_overflow=0, pool_timeout=300, connect_args=args
            )
            _sqlite_pragmas(self.writer, busy_timeout_ms, immediate=True)
            _sqlite_pragmas(self.reader, busy_timeout_ms, immediate=False)
        elif self.dialect == "postgresql":
            self.writer = create_async_engine(
                parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
            self.reader = self.writer
        else:
            raise VaultConfigError(f"unsupported vault database {self.dialect!r}")
        self._inserts: GroupCommit[_Write, bool] = GroupCommit(self._flush)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    async def open(self) -> None:
        try:
            async with self.writer.begin() as conn:
                await schema.create(conn)
        except (DBAPIError, OSError) as exc:
            raise VaultUnavailable(f"vault database unreachable ({type(exc).__name__})") from None

    async def close(self) -> None:
        await self._inserts.close()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()

    # ------------------------------------------------------------------ KEK registry

    async def keks(self) -> list[Any]:
        async with self.reader.connect() as conn:
            rows = await conn.execute(select(vault_keks).order_by(vault_keks.c.created_at))
            return list(rows.all())

    async def sync_keks(self, provider: str, current: str, now: datetime) -> None:
        """Make ``current`` the registry's current KEK; any other current one is retiring."""
        async with self.writer.begin() as conn:
            q = select(vault_keks.c.kek_id, vault_keks.c.state)
            if self.is_postgres:
                q = q.with_for_update()
            states = {k: s for k, s in (await conn.execute(q)).all()}
            if states.get(current, "current") != "current":
                raise VaultConfigError(
                    f"KEK {current} is current in the key store but {states[current]} in the "
                    "vault registry (restored an old key store?)"
                )
            if current not in states:
                await conn.execute(
                    insert(vault_keks).values(
                        kek_id=current, provider=provider, state="current", created_at=now
                    )
                )
            await conn.execute(
                update(vault_keks)
                .where(vault_keks.c.state == "current", vault_keks.c.kek_id != current)
                .values(state="retiring")
            )

    async def retire_if_unused(self, kek_id: str, now: datetime) -> bool:
        """Mark a retiring KEK retired if no record uses it any more."""
        async with self.writer.begin() as conn:
            if self.is_postgres:
                await conn.execute(
                    select(vault_keks.c.kek_id)
                    .where(vault_keks.c.kek_id == kek_id)
                    .with_for_update()
                )
            used = (
                await conn.execute(select(func.count()).where(vault_records.c.kek_id == kek_id))
            ).scalar_one()
            if used:
                return False
            await conn.execute(
                update(vault_keks)
                .where(vault_keks.c.kek_id == kek_id, vault_keks.c.state == "retiring")
                .values(state="retired", retired_at=now)
            )
            return True

    async def count_by_kek(self) -> dict[str, int]:
        async with self.reader.connect() as conn:
            rows = await conn.execute(
                select(vault_records.c.kek_id, func.count()).group_by(vault_records.c.kek_id)
            )
            return {k: n for k, n in rows.all()}

    # ------------------------------------------------------------------ records

    async def insert(self, record: StoredRecord, audit: AuditRow) -> bool:
        """Write a record and its audit row; ``False`` if its KEK is no longer current."""
        return await self._inserts.submit(_Write(record, audit))

    async def _flush(self, batch: Sequence[_Write]) -> list[bool]:
        async with self.writer.begin() as conn:
            kek_ids = {w.record.sealed.kek_id for w in batch if w.record is not None}
            states: dict[str, str] = {}
            if kek_ids:
                q = select(vault_keks.c.kek_id, vault_keks.c.state).where(
                    vault_keks.c.kek_id.in_(kek_ids)
                )
                if self.is_postgres:
                    q = q.with_for_update(read=True)
                states = {k: s for k, s in (await conn.execute(q)).all()}
            ok = [
                w.record is None or states.get(w.record.sealed.kek_id) == "current" for w in batch
            ]
            records = [
                _record_values(w.record)
                for w, good in zip(batch, ok, strict=True)
                if good and w.record is not None
            ]
            audits = [w.audit.values() for w, good in zip(batch, ok, strict=True) if good]
            for table, rows in ((vault_records, records), (vault_audit, audits)):
                if not rows:
                    continue
                if self.is_postgres:
                    await conn.execute(insert(table), rows)
                else:  # the hot path: skip SQLAlchemy's per-row parameter processing
                    sql, params = _sqlite_executemany(table, rows)
                    await conn.exec_driver_sql(sql, params)
        return ok

    async def get(self, token: str, merchant_id: str) -> StoredRecord | None:
        async with self.reader.connect() as conn:
            row = (
                await conn.execute(
                    select(vault_records).where(
                        vault_records.c.token == token, vault_records.c.merchant_id == merchant_id
                    )
                )
            ).first()
        if row is None:
            return None
        sealed = EncryptedRecord(
            kek_id=row.kek_id,
            wrapped_key=bytes(row.wrapped_key),
            nonce=bytes(row.nonce),
            ciphertext=bytes(row.ciphertext),
            version=row.version,
        )
        return StoredRecord(_meta(row), sealed)

    async def delete(self, token: str, merchant_id: str, audit: AuditRow) -> bool:
        async with self.writer.begin() as conn:
            gone = await conn.execute(
                delete(vault_records).where(
                    vault_records.c.token == token, vault_records.c.merchant_id == merchant_id
                )
            )
            if not gone.rowcount:
                return False
            await conn.execute(insert(vault_audit).values(**audit.values()))
        if not self.is_postgres:
            async with self.writer.connect() as conn:
                # Outside any transaction. Best effort: reports "busy" (no error) while a
                # reader still uses old WAL frames; the next checkpoint gets them.
                raw = await conn.get_raw_connection()
                assert raw.driver_connection is not None
                cursor = await raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                await cursor.close()
        return True

    async def record_count(self) -> int:
        async with self.reader.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(vault_records))).scalar_one()
            )

    # ------------------------------------------------------------------ rotation

    async def rewrap_candidates(
        self, kek_ids: Sequence[str], after: str, limit: int
    ) -> list[tuple[str, str, bytes]]:
        """``(token, kek_id, wrapped_key)`` under ``kek_ids``, in token order after ``after``."""
        async with self.reader.connect() as conn:
            rows = await conn.execute(
                select(vault_records.c.token, vault_records.c.kek_id, vault_records.c.wrapped_key)
                .where(vault_records.c.kek_id.in_(list(kek_ids)), vault_records.c.token > after)
                .order_by(vault_records.c.token)
                .limit(limit)
            )
            return [(t, k, bytes(w)) for t, k, w in rows.all()]

    async def compare_and_swap_keys(self, updates: Sequence[tuple[str, str, str, bytes]]) -> None:
        """For each ``(token, old_kek, new_kek, wrapped)``: replace the wrapped key only
        if the row is still under ``old_kek`` (a deleted or already re-wrapped row is
        left alone). One transaction per batch."""
        if not updates:
            return
        stmt = (
            update(vault_records)
            .where(
                vault_records.c.token == bindparam("b_token"),
                vault_records.c.kek_id == bindparam("b_old"),
            )
            .values(kek_id=bindparam("b_new"), wrapped_key=bindparam("b_wrapped"))
        )
        params = [{"b_token": t, "b_old": o, "b_new": n, "b_wrapped": w} for t, o, n, w in updates]
        async with self.writer.begin() as conn:
            await conn.execute(stmt, params)

    # ------------------------------------------------------------------ audit

    async def add_audit(self, audit: AuditRow) -> None:
        await self._inserts.submit(_Write(None, audit))

    async def audit_entries(self, *, token: str | None = None, limit: int = 50) -> list[AuditEntry]:
        q = select(vault_audit).order_by(vault_audit.c.id.desc()).limit(limit)
        if token is not None:
            q = q.where(vault_audit.c.token == token)
        async with self.reader.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [
            AuditEntry(
                id=r.id,
                at=r.at,
                who=r.who,
                peer=r.peer,
                action=r.action,
                why=r.why,
                token=r.token,
                merchant_id=r.merchant_id,
            )
            for r in rows
        ]


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):  # as UtcDateTime + SQLite DATETIME store it
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _sqlite_executemany(table: Table, rows: list[dict[str, Any]]) -> tuple[str, list[Any]]:
    names = list(rows[0])
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"  # noqa: S608 - identifiers from our own Table
    return sql, [tuple(_sqlite_value(r[n]) for n in names) for r in rows]


def _prepare_sqlite_file(path: Path) -> None:
    """Directory 0700 and database file 0600 before SQLite creates it (SQLite gives the
    ``-wal`` and ``-shm`` files the database file's mode)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.close(fd)


def _sqlite_pragmas(engine: AsyncEngine, busy_timeout_ms: int, *, immediate: bool) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
