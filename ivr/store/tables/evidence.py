"""Evidence: consent records, their seals, and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from ivr.store.tables.base import Base, Id, MerchantId
from ivr.store.types import BigIntPK

# --------------------------------------------------------------------------- evidence, audit


class ConsentRecord(Base):
    """Append-only, chained evidence of a consent given in a call (docs/product.md §4.3).

    ``seq`` orders the chain; ``prev_hash`` is the previous record's ``hash``; ``hash``
    is SHA-256 over the canonical JSON of every other column but ``mac``; ``mac`` is the
    keyed chain MAC over ``seq``, ``hash`` and the previous record's ``mac`` (NULL on
    records written before keyed sealing, which :class:`ConsentSeal` covers). Database
    triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL), and an INSERT
    without a MAC (:mod:`ivr.consent`)."""

    __tablename__ = "consent_records"
    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(Id, unique=True)
    merchant_id: Mapped[MerchantId] = mapped_column(index=True)
    call_request_id: Mapped[str] = mapped_column(Id, index=True)
    kind: Mapped[str] = mapped_column(String(30))  # ivr/consent/ledger.py KINDS
    did: Mapped[str] = mapped_column(String(16))
    caller_id: Mapped[str] = mapped_column(String(16))
    call_id: Mapped[str] = mapped_column(String(100))
    call_started_at: Mapped[datetime]
    decided_at: Mapped[datetime]
    prompts: Mapped[dict[str, Any]]  # {"played": [{"prompt_id", "sha256"}, …]}
    key_pressed: Mapped[str] = mapped_column(String(1))  # the menu key; "" for an entry
    details: Mapped[dict[str, Any]]  # amount, installments, product name …
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    mac: Mapped[str | None] = mapped_column(String(64))


class ConsentSeal(Base):
    """Where keyed sealing of the consent chain began: written once (``id`` 1), under
    the append lock, by the first engine of a release with keyed MACs. The records
    before it (1..``sealed_through``) are summed up by ``legacy_digest`` and the key by
    ``key_id``; ``mac`` covers every field, and the first keyed record chains from it.
    ``note`` records a problem an operator acknowledged when sealing. Append-only."""

    __tablename__ = "consent_seals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sealed_through: Mapped[int] = mapped_column(BigInteger)
    legacy_digest: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime]
    mac: Mapped[str] = mapped_column(String(64))


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(100))  # "cli", "api:key_…", "console:usr_…"
    merchant_id: Mapped[str | None] = mapped_column(Id, index=True)
    action: Mapped[str] = mapped_column(String(60))
    object_type: Mapped[str] = mapped_column(String(30))
    object_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]]
