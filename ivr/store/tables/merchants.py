"""Merchants, their API keys and customers; the DID pool and its leases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ivr.store.tables.base import Base, Id, Key, MerchantId, Status

# --------------------------------------------------------------------------- merchants


class Merchant(Base):
    __tablename__ = "merchants"
    id: Mapped[Key]
    name: Mapped[str] = mapped_column(String(100))  # 상호, read out in calls and SMS
    status: Mapped[str] = mapped_column(Status)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # per-merchant overrides
    created_at: Mapped[datetime]
    # the PG accounts its cards are registered at (ivr/pg_accounts): NULL primary is the
    # ``[gateway]`` settings' account (``default``); the secondary (NULL: none; it may
    # be ``default``) takes registrations while the primary does not answer
    pg_primary_id: Mapped[str | None] = mapped_column(Id)
    pg_secondary_id: Mapped[str | None] = mapped_column(Id)


class PgAccount(Base):
    """A PG account (PortOne v1 / V2 / the sandbox) cards can be registered at. The
    ``default`` account is not a row: it is the ``[gateway]`` settings. Secrets (API
    secret, webhook secret) are sealed with AES-GCM under the engine's secrets key
    file (:mod:`ivr.pg_accounts.sealing`); ``api_key`` is an identifier, shown masked."""

    __tablename__ = "pg_accounts"
    id: Mapped[Key]  # a slug the operator picks: ksnet-main, nice-backup …
    # the merchant that brought its own PG contract (POST /v1/pg-accounts): only it sees
    # and routes to the account; NULL: the operators', offered to every merchant
    merchant_id: Mapped[str | None] = mapped_column(ForeignKey("merchants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # sandbox | portone | portone_v2
    base_url: Mapped[str] = mapped_column(String(200))
    api_key: Mapped[str] = mapped_column(String(100), default="")
    secrets_sealed: Mapped[str] = mapped_column(String(1000))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)  # pg, channel_key, store_id …
    status: Mapped[str] = mapped_column(Status)  # active | disabled
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ApiKey(Base):
    """A merchant API key. Only a SHA-256 of the secret is kept (the secret has 256
    bits of entropy, so a slow hash adds nothing); ``prefix`` finds the row."""

    __tablename__ = "api_keys"
    id: Mapped[Key]
    merchant_id: Mapped[MerchantId] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(24), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(Status)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("merchant_id", "external_ref"),)
    id: Mapped[Key]
    merchant_id: Mapped[MerchantId] = mapped_column(index=True)
    external_ref: Mapped[str | None] = mapped_column(String(100))  # merchant's own id
    name: Mapped[str] = mapped_column(String(100), default="")
    mobile: Mapped[str] = mapped_column(String(16), index=True)  # normalized, 010XXXXXXXX
    created_at: Mapped[datetime]
    # deleted (ivr/merchants/customer_changes.py): name, mobile and external_ref are
    # blanked; the row stays for the payments, cards and consent records naming it
    deleted_at: Mapped[datetime | None]


# --------------------------------------------------------------------------- DID pool


class Did(Base):
    __tablename__ = "dids"
    __table_args__ = (Index("ix_dids_lru", "status", "last_leased_at", "number"),)
    number: Mapped[str] = mapped_column(String(16), primary_key=True)  # digits, 0505XXXXXXX
    status: Mapped[str] = mapped_column(Status)
    last_leased_at: Mapped[datetime]  # 1970-01-01 until first leased; LRU order
    created_at: Mapped[datetime]


class Lease(Base):
    """(DID, mobile) lease. At most one *active* lease per pair (partial unique index);
    a DID serves any number of different mobiles at once (docs/product.md §2)."""

    __tablename__ = "leases"
    __table_args__ = (
        Index(
            "uq_leases_active_pair",
            "did",
            "mobile",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_leases_mobile_status", "mobile", "status"),
        Index("ix_leases_status_expires_at", "status", "expires_at"),
    )
    id: Mapped[Key]
    did: Mapped[str] = mapped_column(ForeignKey("dids.number"))
    mobile: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(24))
    call_request_id: Mapped[str | None] = mapped_column(Id, index=True)
    status: Mapped[str] = mapped_column(Status)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    cooldown_until: Mapped[datetime | None]
