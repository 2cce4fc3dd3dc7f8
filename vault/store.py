"""The vault store: the card records, the KEK registry and the audit log, on the
vault's own :class:`~vault.database.VaultDatabase` (SQLite or PostgreSQL).

:meth:`VaultStore.delete` checkpoints and truncates the SQLite WAL so the page images
holding the deleted row go too (blocks already freed by the file system are beyond our
reach; the wrapped data key of a deleted record becomes useless for good when its KEK
is retired at the next rotation). A deleted PostgreSQL row stays in dead tuples until
VACUUM, with the same crypto-shredding argument.

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

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from vault import audit_chain, schema
from vault.batching import GroupCommit
from vault.database import VaultDatabase
from vault.errors import VaultConfigError, VaultUnavailable
from vault.evidence import EvidenceKey
from vault.models import AuditEntry, TokenRef
from vault.rows import (
    AUDIT_INSERT,
    RECORD_COLUMNS,
    SQLITE_INSERT_AUDIT,
    SQLITE_INSERT_RECORD,
    AuditRow,
    PendingWrite,
    StoredRecord,
    WriteResult,
    record_row,
    records_by_key,
    same,
    stored,
)
from vault.schema import vault_audit, vault_keks, vault_records


class VaultStore(VaultDatabase):
    def __init__(self, url: str, *, busy_timeout_ms: int = 15_000, pool_size: int = 5) -> None:
        super().__init__(url, busy_timeout_ms=busy_timeout_ms, pool_size=pool_size)
        self._audit_key: EvidenceKey | None = None
        # What SQLAlchemy itself binds for a UtcDateTime on SQLite (text, microseconds
        # always): the fast path's executemany binds the same.
        self._sqlite_stamp: Callable[[datetime], Any] = (
            self.sqlite_binder(vault_audit.c.at.type) or same
        )
        self._writes: GroupCommit[PendingWrite, WriteResult] = GroupCommit(self._flush)
        self._reads: GroupCommit[tuple[str, str], StoredRecord | None] = GroupCommit(
            self._read_many, max_batch=500
        )

    def use_audit_key(self, key: EvidenceKey) -> None:
        """The key audit rows are chained with (:func:`vault.audit_chain.start`)."""
        self._audit_key = key

    def _chain(self, conn: Connection, audits: Sequence[AuditRow]) -> list[tuple[int, str]]:
        if self._audit_key is None:
            raise VaultConfigError("the vault audit key is not loaded: no audit row written")
        return audit_chain.link(conn, self._audit_key, [a.values() for a in audits])

    async def open(self) -> None:
        try:
            await self.write(schema.create)
        except (DBAPIError, OSError) as exc:
            raise VaultUnavailable(f"vault database unreachable ({type(exc).__name__})") from None

    async def ping(self) -> None:
        """One trivial read (:class:`VaultUnavailable` when the database is gone)."""

        def work(conn: Connection) -> None:
            conn.execute(text("SELECT 1"))

        try:
            await self.read(work)
        except (DBAPIError, OSError, RuntimeError) as exc:
            raise VaultUnavailable(f"vault database unreachable ({type(exc).__name__})") from None

    async def close(self) -> None:
        """Wait for queued writes, then close every connection (idempotent)."""
        await self._writes.close()
        await self._reads.close()
        await super().close()

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
        written, _ = await self._writes.submit(PendingWrite(audit, record))
        return written

    async def add_audit(self, audit: AuditRow) -> None:
        await self._writes.submit(PendingWrite(audit))

    async def get_audited(self, audit: AuditRow) -> StoredRecord | None:
        """The record ``(audit.token, audit.merchant_id)``, with ``audit`` appended in the
        same transaction — committed before this returns; ``None`` (and no audit row) if
        there is no such record for that merchant."""
        if audit.token is None or audit.merchant_id is None:
            raise ValueError("an audited read names a token and a merchant")
        _, record = await self._writes.submit(PendingWrite(audit, fetch=True))
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
            return stored(row), allowed

        return await self.write(work)

    async def _flush(self, batch: Sequence[PendingWrite]) -> list[WriteResult]:
        return await self.write(functools.partial(self._write_batch, batch))

    def _write_batch(self, batch: Sequence[PendingWrite], conn: Connection) -> list[WriteResult]:
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
        found = records_by_key(conn, wanted)
        stamp = self._sqlite_stamp if sqlite else same
        records: list[tuple[Any, ...]] = []
        audited: list[AuditRow] = []
        results: list[WriteResult] = []
        for w in batch:
            fetched = None
            if w.record is not None:
                ok = states.get(w.record.sealed.kek_id) == "current"
                if ok:
                    records.append(record_row(w.record, stamp))
            elif w.fetch:
                fetched = found.get((w.audit.token or "", w.audit.merchant_id or ""))
                ok = fetched is not None
            else:
                ok = True
            if ok:
                audited.append(w.audit)
            results.append((ok, fetched))
        links = self._chain(conn, audited) if audited else []
        audits = [(*a.row(stamp), *link) for a, link in zip(audited, links, strict=True)]
        for table, sql, names, rows in (
            (vault_records, SQLITE_INSERT_RECORD, RECORD_COLUMNS, records),
            (vault_audit, SQLITE_INSERT_AUDIT, AUDIT_INSERT, audits),
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
        found = await self.read(functools.partial(records_by_key, keys=keys))
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
        await self.checkpoint_wal()
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
