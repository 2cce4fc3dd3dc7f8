"""The vault's own database: SQLite by default (WAL), PostgreSQL by URL.

Every database operation is a plain synchronous function of a SQLAlchemy
:class:`~sqlalchemy.engine.Connection`, run by :meth:`VaultStore.write` (one
transaction) or :meth:`VaultStore.read`:

* SQLite: the standard-library driver on threads the store owns. **One writer
  thread** with one connection (every transaction starts with ``BEGIN IMMEDIATE``;
  writes of this process queue on that thread, other processes wait on the busy
  timeout) and a small pool of reader threads whose autocommit connections never block
  on the writer in WAL mode. A whole write transaction is one hop from the event loop
  to the writer thread and back — not one per statement, cursor and commit as through
  an async driver — and the thread releases the GIL while SQLite works and fsyncs.
* PostgreSQL: asyncpg, the same functions through ``AsyncConnection.run_sync``.

``PRAGMA secure_delete=ON`` makes SQLite overwrite deleted rows with zeros, and
:meth:`VaultStore.delete` checkpoints and truncates the WAL so the page images holding
the deleted row go too (blocks already freed by the file system are beyond our reach;
the wrapped data key of a deleted record becomes useless for good when its KEK is
retired at the next rotation). ``synchronous=FULL``: a token handed out must survive a
power cut. A deleted PostgreSQL row stays in dead tuples until VACUUM, with the same
crypto-shredding argument.

New records and audit rows are written through :class:`~vault.batching.GroupCommit`:
concurrent callers share one transaction (one fsync). A record may only be written
under the KEK the registry (``vault_keks``) calls current; the check runs in the
inserting transaction (``FOR SHARE`` on PostgreSQL, the write lock on SQLite), so a
rotation that has marked a KEK ``retiring`` never misses a record written under it.
An audited read (:meth:`VaultStore.get_audited`) reads the record and appends its
audit row in one such transaction: the audit row is committed before the caller can
decrypt, and one fsync serves a whole batch of decrypts. Every audit row is chained
(:func:`vault.audit_chain.link`) in the transaction that inserts it, with the key
:meth:`VaultStore.use_audit_key` gave; without one the store writes no audit row.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vault import audit_chain, schema
from vault.batching import GroupCommit
from vault.crypto import EncryptedRecord
from vault.errors import VaultConfigError, VaultUnavailable
from vault.evidence import EvidenceKey
from vault.models import AuditEntry, CardMetadata, TokenRef
from vault.schema import vault_audit, vault_keks, vault_records

R = TypeVar("R")
Work = Callable[[Connection], R]


@dataclass(frozen=True, slots=True)
class StoredRecord:
    meta: CardMetadata
    sealed: EncryptedRecord


@dataclass(frozen=True, slots=True)
class AuditRow:
    at: datetime
    who: str
    peer: str
    action: str
    why: str
    token: str | None
    merchant_id: str | None

    def values(self) -> dict[str, Any]:
        return dict(zip(_AUDIT_COLUMNS, self._row(_same), strict=True))

    def _row(self, stamp: Callable[[datetime], Any]) -> tuple[Any, ...]:
        return (stamp(self.at), self.who, self.peer, self.action, self.why, self.token,
                self.merchant_id)  # fmt: skip


@dataclass(slots=True)
class _Write:
    """One queued write: an audit row, plus a record to insert (tokenize) or a record to
    read, auditing only if it exists (an audited decrypt)."""

    audit: AuditRow
    record: StoredRecord | None = None
    fetch: bool = False


# (written, fetched): written is False when the record's KEK is no longer current.
_Result = tuple[bool, StoredRecord | None]

_RECORD_COLUMNS: Final = ("token", "merchant_id", "version", "kek_id", "wrapped_key", "nonce",
                          "ciphertext", "bin6", "last4", "brand", "issuer", "card_type",
                          "owner_type", "fingerprint", "created_at")  # fmt: skip
_AUDIT_COLUMNS: Final = ("at", "who", "peer", "action", "why", "token", "merchant_id")
_AUDIT_INSERT: Final = (*_AUDIT_COLUMNS, "seq", "mac")
assert set(_RECORD_COLUMNS) == set(vault_records.c.keys())
assert set(_AUDIT_INSERT) | {"id"} == set(vault_audit.c.keys())


def _same(value: datetime) -> datetime:
    return value


def _record_row(r: StoredRecord, stamp: Callable[[datetime], Any]) -> tuple[Any, ...]:
    m, s = r.meta, r.sealed
    return (m.token, m.merchant_id, s.version, s.kek_id, s.wrapped_key, s.nonce, s.ciphertext,
            m.bin6, m.last4, m.brand, m.issuer, m.card_type, m.owner_type, m.fingerprint,
            stamp(m.created_at))  # fmt: skip


def _insert_sql(table: Table, names: Sequence[str]) -> str:
    """Driver-level ``INSERT`` for SQLite's ``executemany`` (names are our own columns)."""
    marks = ", ".join("?" * len(names))
    return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"  # noqa: S608


_SQLITE_INSERT_RECORD: Final = _insert_sql(vault_records, _RECORD_COLUMNS)
_SQLITE_INSERT_AUDIT: Final = _insert_sql(vault_audit, _AUDIT_INSERT)


def _stored(row: Row[Any]) -> StoredRecord:
    sealed = EncryptedRecord(
        kek_id=row.kek_id,
        wrapped_key=bytes(row.wrapped_key),
        nonce=bytes(row.nonce),
        ciphertext=bytes(row.ciphertext),
        version=row.version,
    )
    return StoredRecord(_meta(row), sealed)


def _meta(row: Row[Any]) -> CardMetadata:
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


def _records_by_key(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredRecord]:
    """The records for ``(token, merchant_id)`` keys; another merchant's row is not found."""
    if not keys:
        return {}
    tokens = sorted({t for t, _ in keys})
    rows = conn.execute(select(vault_records).where(vault_records.c.token.in_(tokens)))
    return {(r.token, r.merchant_id): _stored(r) for r in rows}


class VaultStore:
    def __init__(self, url: str, *, busy_timeout_ms: int = 15_000, pool_size: int = 5) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise VaultConfigError("vault database URL is not a valid SQLAlchemy URL") from None
        self.dialect = parsed.get_backend_name()
        self._pg: AsyncEngine | None = None
        self._sqlite_stamp: Callable[[datetime], Any] = _same
        self._closed = False
        self._audit_key: EvidenceKey | None = None
        if self.dialect == "sqlite":
            if parsed.database in (None, "", ":memory:"):
                raise VaultConfigError("the vault needs a SQLite file, not an in-memory database")
            _prepare_sqlite_file(Path(parsed.database or ""))
            sync_url = parsed.set(drivername="sqlite+pysqlite")  # on our own threads
            # Each connection is used by one thread at a time (pool checkout).
            args = {"timeout": busy_timeout_ms / 1000, "check_same_thread": False}
            self._writer: Engine = create_engine(
                sync_url, pool_size=1, max_overflow=0, pool_timeout=300, connect_args=args
            )
            self._reader: Engine = create_engine(
                sync_url, pool_size=pool_size, max_overflow=0, pool_timeout=300, connect_args=args
            )
            _sqlite_pragmas(self._writer, busy_timeout_ms, writer=True)
            _sqlite_pragmas(self._reader, busy_timeout_ms, writer=False)
            self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="vault-db-write")
            self._read_threads = ThreadPoolExecutor(pool_size, thread_name_prefix="vault-db-read")
            # What SQLAlchemy itself binds for a UtcDateTime (text, microseconds always).
            dialect = self._writer.dialect
            stamp = vault_audit.c.at.type.dialect_impl(dialect).bind_processor(dialect)
            self._sqlite_stamp = stamp or _same
        elif self.dialect == "postgresql":
            self._pg = create_async_engine(
                parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
        else:
            raise VaultConfigError(f"unsupported vault database {self.dialect!r}")
        self._writes: GroupCommit[_Write, _Result] = GroupCommit(self._flush)
        self._reads: GroupCommit[tuple[str, str], StoredRecord | None] = GroupCommit(
            self._read_many, max_batch=500
        )

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def use_audit_key(self, key: EvidenceKey) -> None:
        """The key audit rows are chained with (:func:`vault.audit_chain.start`)."""
        self._audit_key = key

    def _chain(self, conn: Connection, audits: Sequence[AuditRow]) -> list[tuple[int, str]]:
        if self._audit_key is None:
            raise VaultConfigError("the vault audit key is not loaded: no audit row written")
        return audit_chain.link(conn, self._audit_key, [a.values() for a in audits])

    # ------------------------------------------------------------------ running work

    async def write(self, work: Work[R]) -> R:
        """``work(conn)`` in one write transaction (SQLite: on the writer thread)."""
        if self._pg is not None:
            async with self._pg.begin() as conn:
                return await conn.run_sync(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._write_thread, self._sqlite_write, work)

    async def read(self, work: Work[R]) -> R:
        """``work(conn)`` on a reader connection (SQLite: autocommit, on a reader thread)."""
        if self._pg is not None:
            async with self._pg.connect() as conn:
                return await conn.run_sync(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_threads, self._sqlite_read, work)

    def _sqlite_write(self, work: Work[R]) -> R:
        with self._writer.begin() as conn:
            return work(conn)

    def _sqlite_read(self, work: Work[R]) -> R:
        with self._reader.connect() as conn:
            return work(conn)

    def _sqlite_checkpoint(self) -> None:
        """Outside any transaction (hence on the driver connection, which SQLAlchemy
        would wrap in ``BEGIN IMMEDIATE``). Best effort: reports "busy" (no error) while
        a reader still uses old WAL frames; the next checkpoint gets them."""
        with self._writer.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").close()

    async def open(self) -> None:
        try:
            await self.write(schema.create)
        except (DBAPIError, OSError) as exc:
            raise VaultUnavailable(f"vault database unreachable ({type(exc).__name__})") from None

    async def close(self) -> None:
        """Wait for queued writes, then close every connection (idempotent)."""
        await self._writes.close()
        await self._reads.close()
        if self._closed:
            return
        self._closed = True
        if self._pg is not None:
            await self._pg.dispose()
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._write_thread, self._writer.dispose)
        await loop.run_in_executor(self._read_threads, self._reader.dispose)
        self._write_thread.shutdown()
        self._read_threads.shutdown()

    # ------------------------------------------------------------------ KEK registry

    async def keks(self) -> list[Row[Any]]:
        def work(conn: Connection) -> list[Row[Any]]:
            return list(conn.execute(select(vault_keks).order_by(vault_keks.c.created_at)))

        return await self.read(work)

    async def sync_keks(self, provider: str, current: str, now: datetime) -> None:
        """Make ``current`` the registry's current KEK; any other current one is retiring."""

        def work(conn: Connection) -> None:
            if conn.dialect.name == "postgresql":
                # Row locks cannot cover a row that does not exist yet: two processes (or a
                # writer refreshing during a rotation) could both insert the new KEK. This
                # mode is self-exclusive but lets the inserts' ``FOR SHARE`` checks through.
                conn.execute(text("LOCK TABLE vault_keks IN SHARE ROW EXCLUSIVE MODE"))
            rows = conn.execute(select(vault_keks.c.kek_id, vault_keks.c.state))
            states = {k: s for k, s in rows}
            if states.get(current, "current") != "current":
                raise VaultConfigError(
                    f"KEK {current} is current in the key store but {states[current]} in the "
                    "vault registry (restored an old key store?)"
                )
            if current not in states:
                conn.execute(
                    insert(vault_keks).values(
                        kek_id=current, provider=provider, state="current", created_at=now
                    )
                )
            conn.execute(
                update(vault_keks)
                .where(vault_keks.c.state == "current", vault_keks.c.kek_id != current)
                .values(state="retiring")
            )

        await self.write(work)

    async def retire_if_unused(self, kek_id: str, now: datetime) -> bool:
        """Mark a retiring KEK retired if no record uses it any more."""

        def work(conn: Connection) -> bool:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    select(vault_keks.c.kek_id)
                    .where(vault_keks.c.kek_id == kek_id)
                    .with_for_update()
                )
            used = conn.execute(
                select(func.count()).where(vault_records.c.kek_id == kek_id)
            ).scalar_one()
            if used:
                return False
            conn.execute(
                update(vault_keks)
                .where(vault_keks.c.kek_id == kek_id, vault_keks.c.state == "retiring")
                .values(state="retired", retired_at=now)
            )
            return True

        return await self.write(work)

    async def count_by_kek(self) -> dict[str, int]:
        def work(conn: Connection) -> dict[str, int]:
            rows = conn.execute(
                select(vault_records.c.kek_id, func.count()).group_by(vault_records.c.kek_id)
            )
            return {k: n for k, n in rows}

        return await self.read(work)

    # ------------------------------------------------------------------ records

    async def insert(self, record: StoredRecord, audit: AuditRow) -> bool:
        """Write a record and its audit row; ``False`` if its KEK is no longer current."""
        written, _ = await self._writes.submit(_Write(audit, record))
        return written

    async def add_audit(self, audit: AuditRow) -> None:
        await self._writes.submit(_Write(audit))

    async def get_audited(self, audit: AuditRow) -> StoredRecord | None:
        """The record ``(audit.token, audit.merchant_id)``, with ``audit`` appended in the
        same transaction — committed before this returns; ``None`` (and no audit row) if
        there is no such record for that merchant."""
        if audit.token is None or audit.merchant_id is None:
            raise ValueError("an audited read names a token and a merchant")
        _, record = await self._writes.submit(_Write(audit, fetch=True))
        return record

    async def get_for_check(
        self, audit: AuditRow, *, passed_action: str, since: datetime, limit: int
    ) -> tuple[StoredRecord | None, bool]:
        """An audited read with a ceiling: ``(record, allowed)``. Under the record's lock
        (the write lock on SQLite), count this token's ``audit.action`` rows since
        ``since`` minus its ``passed_action`` rows; below ``limit`` append ``audit``
        (committed before this returns) and allow, else append ``audit`` as
        ``<action>.limited`` and refuse. ``(None, True)`` (and no row) when there is no
        such record for that merchant."""
        if audit.token is None or audit.merchant_id is None:
            raise ValueError("an audited read names a token and a merchant")
        token, merchant_id = audit.token, audit.merchant_id

        def work(conn: Connection) -> tuple[StoredRecord | None, bool]:
            q = select(vault_records).where(
                vault_records.c.token == token, vault_records.c.merchant_id == merchant_id
            )
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            row = conn.execute(q).first()
            if row is None:
                return None, True
            a = vault_audit.c

            def count(action: str) -> int:
                return int(
                    conn.execute(
                        select(func.count()).where(
                            a.token == token, a.action == action, a.at >= since
                        )
                    ).scalar_one()
                )

            allowed = count(audit.action) - count(passed_action) < limit
            values = audit.values()
            if not allowed:
                values["action"] = f"{audit.action}.limited"
            if self._audit_key is None:
                raise VaultConfigError("the vault audit key is not loaded: no audit row written")
            [(seq, mac)] = audit_chain.link(conn, self._audit_key, [values])
            conn.execute(insert(vault_audit).values(**values, seq=seq, mac=mac))
            return _stored(row), allowed

        return await self.write(work)

    async def _flush(self, batch: Sequence[_Write]) -> list[_Result]:
        return await self.write(functools.partial(self._write_batch, batch))

    def _write_batch(self, batch: Sequence[_Write], conn: Connection) -> list[_Result]:
        sqlite = conn.dialect.name == "sqlite"
        kek_ids = {w.record.sealed.kek_id for w in batch if w.record is not None}
        states: dict[str, str] = {}
        if kek_ids:
            q = select(vault_keks.c.kek_id, vault_keks.c.state).where(
                vault_keks.c.kek_id.in_(kek_ids)
            )
            if not sqlite:
                q = q.with_for_update(read=True)
            states = {k: s for k, s in conn.execute(q)}
        wanted = [(w.audit.token or "", w.audit.merchant_id or "") for w in batch if w.fetch]
        found = _records_by_key(conn, wanted)
        stamp = self._sqlite_stamp if sqlite else _same
        records: list[tuple[Any, ...]] = []
        audited: list[AuditRow] = []
        results: list[_Result] = []
        for w in batch:
            fetched = None
            if w.record is not None:
                ok = states.get(w.record.sealed.kek_id) == "current"
                if ok:
                    records.append(_record_row(w.record, stamp))
            elif w.fetch:
                fetched = found.get((w.audit.token or "", w.audit.merchant_id or ""))
                ok = fetched is not None
            else:
                ok = True
            if ok:
                audited.append(w.audit)
            results.append((ok, fetched))
        links = self._chain(conn, audited) if audited else []
        audits = [(*a._row(stamp), *link) for a, link in zip(audited, links, strict=True)]
        for table, sql, names, rows in (
            (vault_records, _SQLITE_INSERT_RECORD, _RECORD_COLUMNS, records),
            (vault_audit, _SQLITE_INSERT_AUDIT, _AUDIT_INSERT, audits),
        ):
            if not rows:
                continue
            if sqlite:  # the hot path: one executemany, no per-row SQLAlchemy processing
                conn.exec_driver_sql(sql, rows)
            else:
                conn.execute(insert(table), [dict(zip(names, r, strict=True)) for r in rows])
        return results

    async def get(self, token: str, merchant_id: str) -> StoredRecord | None:
        """The record, or ``None`` (also when it belongs to another merchant).

        Concurrent calls are coalesced into one ``SELECT … WHERE token IN (…)``."""
        return await self._reads.submit((token, merchant_id))

    async def _read_many(self, keys: Sequence[tuple[str, str]]) -> list[StoredRecord | None]:
        found = await self.read(functools.partial(_records_by_key, keys=keys))
        return [found.get(k) for k in keys]

    async def delete(self, token: str, merchant_id: str, audit: AuditRow) -> bool:
        def work(conn: Connection) -> bool:
            gone = conn.execute(
                delete(vault_records).where(
                    vault_records.c.token == token, vault_records.c.merchant_id == merchant_id
                )
            )
            if not gone.rowcount:
                return False
            [(seq, mac)] = self._chain(conn, [audit])
            conn.execute(insert(vault_audit).values(**audit.values(), seq=seq, mac=mac))
            return True

        if not await self.write(work):
            return False
        if self._pg is None:
            await asyncio.get_running_loop().run_in_executor(
                self._write_thread, self._sqlite_checkpoint
            )
        return True

    async def token_refs(self, created_before: datetime, after: str, limit: int) -> list[TokenRef]:
        """Records created before ``created_before``, in token order after ``after``."""

        def work(conn: Connection) -> list[TokenRef]:
            c = vault_records.c
            rows = conn.execute(
                select(c.token, c.merchant_id, c.created_at)
                .where(c.created_at < created_before, c.token > after)
                .order_by(c.token)
                .limit(limit)
            )
            return [TokenRef(t, m, at) for t, m, at in rows]

        return await self.read(work)

    async def record_count(self) -> int:
        def work(conn: Connection) -> int:
            return int(conn.execute(select(func.count()).select_from(vault_records)).scalar_one())

        return await self.read(work)

    # ------------------------------------------------------------------ rotation

    async def rewrap_candidates(
        self, kek_ids: Sequence[str], after: str, limit: int
    ) -> list[tuple[str, str, bytes]]:
        """``(token, kek_id, wrapped_key)`` under ``kek_ids``, in token order after ``after``."""

        def work(conn: Connection) -> list[tuple[str, str, bytes]]:
            rows = conn.execute(
                select(vault_records.c.token, vault_records.c.kek_id, vault_records.c.wrapped_key)
                .where(vault_records.c.kek_id.in_(list(kek_ids)), vault_records.c.token > after)
                .order_by(vault_records.c.token)
                .limit(limit)
            )
            return [(t, k, bytes(w)) for t, k, w in rows]

        return await self.read(work)

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

        def work(conn: Connection) -> None:
            conn.execute(stmt, params)

        await self.write(work)

    # ------------------------------------------------------------------ audit

    async def audit_entries(self, *, token: str | None = None, limit: int = 50) -> list[AuditEntry]:
        q = select(vault_audit).order_by(vault_audit.c.id.desc()).limit(limit)
        if token is not None:
            q = q.where(vault_audit.c.token == token)

        def work(conn: Connection) -> list[AuditEntry]:
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
                for r in conn.execute(q)
            ]

        return await self.read(work)


def _prepare_sqlite_file(path: Path) -> None:
    """Directory 0700 and database file 0600 before SQLite creates it (SQLite gives the
    ``-wal`` and ``-shm`` files the database file's mode)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.close(fd)


def _sqlite_pragmas(engine: Engine, busy_timeout_ms: int, *, writer: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # autocommit; the writer begins below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    if writer:

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
