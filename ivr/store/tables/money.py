"""Cards (vault tokens and display data only), payment intents, attempts, refunds,
billing-key requests and schedules. Amounts are integers in KRW."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ivr.store.tables.base import Base, Id, Key, MerchantId, MerchantPaged, Status

# --------------------------------------------------------------------------- cards, payments


class Card(Base):
    __tablename__ = "cards"
    id: Mapped[Key]
    merchant_id: Mapped[MerchantId] = mapped_column(index=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    vault_token: Mapped[str] = mapped_column(String(64), unique=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)  # keyed HMAC
    bin6: Mapped[str] = mapped_column(String(6))
    last4: Mapped[str] = mapped_column(String(4))
    issuer: Mapped[str] = mapped_column(String(40))
    card_type: Mapped[str] = mapped_column(String(10))  # credit | check
    owner_type: Mapped[str] = mapped_column(String(10))  # personal | corporate
    billing_key_ref: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(Status)
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]
    # a deleted card's billing key deleted at the PG too (ivr/cards/billing_keys.py)
    billing_key_deleted_at: Mapped[datetime | None]
    # the knowledge factor of phone payments (ivr/cards/verification.py): failures in
    # the window that started at verify_failed_since; locked for calls until …
    verify_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    verify_failed_since: Mapped[datetime | None]
    verify_locked_until: Mapped[datetime | None]
    # the PG account holding billing_key_ref (NULL: ``default``, the [gateway] settings)
    pg_account_id: Mapped[str | None] = mapped_column(Id)


class PaymentIntent(MerchantPaged, Base):
    __tablename__ = "payment_intents"
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    card_id: Mapped[str | None] = mapped_column(ForeignKey("cards.id"))
    schedule_id: Mapped[str | None] = mapped_column(Id, index=True)
    source: Mapped[str] = mapped_column(String(16))  # call | api | schedule | bulk
    order_name: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="KRW")
    installment_months: Mapped[int] = mapped_column(Integer, default=0)
    interest_free: Mapped[bool] = mapped_column(default=False)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(Status, index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PaymentAttempt(Base):
    """One charge of the PG under one ``order_id``. The row and its order id are
    committed *before* the request is sent, and every send (the first, and re-sends of
    the same order id when the PG positively does not know it) is claimed in the row
    first: ``sends`` counts them, ``sent_at`` is the latest. A crash leaves a
    ``pending``/``unknown`` row to reconcile."""

    __tablename__ = "payment_attempts"
    id: Mapped[Key]
    intent_id: Mapped[str] = mapped_column(ForeignKey("payment_intents.id"), index=True)
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Status, index=True)
    pg_tx_id: Mapped[str | None] = mapped_column(String(100))
    approval_no: Mapped[str | None] = mapped_column(String(20))
    # the PG's receipt page of a paid attempt, on an allowed host (ivr/gateways/receipts.py)
    receipt_url: Mapped[str | None] = mapped_column(String(500))
    decline_code: Mapped[str | None] = mapped_column(String(60))
    decline_class: Mapped[str | None] = mapped_column(String(8))  # soft | hard
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    sends: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # the PG account the order id goes to, fixed when the row is made (NULL: default):
    # looked up and re-sent there only, whatever happens to the card afterwards
    pg_account_id: Mapped[str | None] = mapped_column(Id)


class Refund(Base):
    """One cancel request to the PG, committed before it is sent. ``checksum`` is the
    refundable balance sent with it (PortOne refuses the cancel when its own differs),
    which makes re-sending it safe and tells, from the PG's cancelled amount, whether
    it was applied. At most one refund of an intent is open at a time."""

    __tablename__ = "refunds"
    id: Mapped[Key]
    intent_id: Mapped[str] = mapped_column(ForeignKey("payment_intents.id"), index=True)
    attempt_id: Mapped[str] = mapped_column(ForeignKey("payment_attempts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(Status, index=True)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    checksum: Mapped[int | None] = mapped_column(BigInteger)
    sent_at: Mapped[datetime | None]
    sends: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    error_code: Mapped[str | None] = mapped_column(String(60))  # why it failed


class BillingKeyRequest(Base):
    """A billing-key request, noted before the card goes to the PG: the key's
    ``customer_uid`` (derived from the vault token) stays named here after the vault
    record is erased, so a key the PG issued for a call that failed, timed out or died
    is deleted at the PG (``status``: pending -> issued -> attached | declined |
    deleted)."""

    __tablename__ = "billing_key_requests"
    customer_uid: Mapped[str] = mapped_column(String(80), primary_key=True)
    merchant_id: Mapped[MerchantId]
    status: Mapped[str] = mapped_column(Status, index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    pg_account_id: Mapped[str | None] = mapped_column(Id)  # where it is asked (NULL: default)


class CardMigrationBatch(Base):
    """One ``arspay cards migrate`` run: a merchant's cards moving to another PG account
    (:mod:`ivr.pg_accounts.migration`). Re-running it resumes the same batch."""

    __tablename__ = "card_migration_batches"
    id: Mapped[Key]  # cmb_…
    merchant_id: Mapped[MerchantId] = mapped_column(index=True)
    to_account_id: Mapped[str] = mapped_column(Id)
    status: Mapped[str] = mapped_column(Status)  # running | finished
    actor: Mapped[str] = mapped_column(String(100))
    total: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class CardMigration(Base):
    """One card's move to another PG account, in steps that each commit before the
    next request: ``pending`` (the new key's customer_uid named) -> ``issued`` (the new
    account issued it) -> ``switched`` (the card now charges there) -> ``done`` (the old
    key deleted at the old account); or ``failed`` / ``needs_payer`` (the new account's
    PG wants the card password, which is never stored: the payer must call). At most one
    open migration per card."""

    __tablename__ = "card_migrations"
    __table_args__ = (
        Index(
            "uq_card_migrations_open_card",
            "card_id",
            unique=True,
            sqlite_where=text("status IN ('pending', 'issued', 'switched')"),
            postgresql_where=text("status IN ('pending', 'issued', 'switched')"),
        ),
    )
    id: Mapped[Key]  # cmg_…
    batch_id: Mapped[str] = mapped_column(ForeignKey("card_migration_batches.id"), index=True)
    merchant_id: Mapped[MerchantId]
    card_id: Mapped[str] = mapped_column(ForeignKey("cards.id"))
    from_account_id: Mapped[str | None] = mapped_column(Id)  # NULL: default
    to_account_id: Mapped[str] = mapped_column(Id)
    old_ref: Mapped[str | None] = mapped_column(String(100))
    new_ref: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(Status, index=True)
    error_code: Mapped[str | None] = mapped_column(String(60))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Schedule(Base):
    __tablename__ = "schedules"
    id: Mapped[Key]
    merchant_id: Mapped[MerchantId] = mapped_column(index=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    card_id: Mapped[str | None] = mapped_column(ForeignKey("cards.id"))
    rule: Mapped[dict[str, Any]]  # {"every": "month", "day": 31} | {"dates": [...]} ...
    mode: Mapped[str] = mapped_column(String(20))  # auto | consent | consent_then_auto
    amount: Mapped[int] = mapped_column(BigInteger)
    order_name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(Status)
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
