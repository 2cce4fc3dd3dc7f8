"""The rows the vault store reads and writes, and their conversions.

A card record as stored (:class:`StoredRecord`: masked metadata and the sealed
envelope), an audit row before it is chained (:class:`AuditRow`), one queued write of
the group commit (:class:`PendingWrite`), and the column orders the SQLite fast path
inserts with ``executemany`` (asserted against :mod:`vault.schema`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Row, Table, select

from vault.crypto import EncryptedRecord
from vault.models import CardMetadata
from vault.schema import vault_audit, vault_records


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
        return dict(zip(AUDIT_COLUMNS, self.row(same), strict=True))

    def row(self, stamp: Callable[[datetime], Any]) -> tuple[Any, ...]:
        """The values in :data:`AUDIT_COLUMNS` order, ``at`` as ``stamp`` binds it."""
        return (stamp(self.at), self.who, self.peer, self.action, self.why, self.token,
                self.merchant_id)  # fmt: skip


@dataclass(slots=True)
class PendingWrite:
    """One queued write: an audit row, plus a record to insert (tokenize) or a record to
    read, auditing only if it exists (an audited decrypt)."""

    audit: AuditRow
    record: StoredRecord | None = None
    fetch: bool = False


# (written, fetched): written is False when the record's KEK is no longer current.
WriteResult = tuple[bool, StoredRecord | None]

RECORD_COLUMNS: Final = ("token", "merchant_id", "version", "kek_id", "wrapped_key", "nonce",
                          "ciphertext", "bin6", "last4", "brand", "issuer", "card_type",
                          "owner_type", "fingerprint", "created_at")  # fmt: skip
AUDIT_COLUMNS: Final = ("at", "who", "peer", "action", "why", "token", "merchant_id")
AUDIT_INSERT: Final = (*AUDIT_COLUMNS, "seq", "mac")
assert set(RECORD_COLUMNS) == set(vault_records.c.keys())
assert set(AUDIT_INSERT) | {"id"} == set(vault_audit.c.keys())


def same(value: datetime) -> datetime:
    return value


def record_row(r: StoredRecord, stamp: Callable[[datetime], Any]) -> tuple[Any, ...]:
    m, s = r.meta, r.sealed
    return (m.token, m.merchant_id, s.version, s.kek_id, s.wrapped_key, s.nonce, s.ciphertext,
            m.bin6, m.last4, m.brand, m.issuer, m.card_type, m.owner_type, m.fingerprint,
            stamp(m.created_at))  # fmt: skip


def insert_sql(table: Table, names: Sequence[str]) -> str:
    """Driver-level ``INSERT`` for SQLite's ``executemany`` (names are our own columns)."""
    marks = ", ".join("?" * len(names))
    return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"  # noqa: S608


SQLITE_INSERT_RECORD: Final = insert_sql(vault_records, RECORD_COLUMNS)
SQLITE_INSERT_AUDIT: Final = insert_sql(vault_audit, AUDIT_INSERT)


def stored(row: Row[Any]) -> StoredRecord:
    sealed = EncryptedRecord(
        kek_id=row.kek_id,
        wrapped_key=bytes(row.wrapped_key),
        nonce=bytes(row.nonce),
        ciphertext=bytes(row.ciphertext),
        version=row.version,
    )
    return StoredRecord(meta_of(row), sealed)


def meta_of(row: Row[Any]) -> CardMetadata:
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


def records_by_key(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredRecord]:
    """The records for ``(token, merchant_id)`` keys; another merchant's row is not found."""
    if not keys:
        return {}
    tokens = sorted({t for t, _ in keys})
    rows = conn.execute(select(vault_records).where(vault_records.c.token.in_(tokens)))
    return {(r.token, r.merchant_id): stored(r) for r in rows}
