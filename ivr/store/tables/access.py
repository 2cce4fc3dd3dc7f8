"""Who may call: API idempotency keys, console users and their sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ivr.store.tables.base import Base, Key, MerchantId, Status

# --------------------------------------------------------------------------- API


class IdempotencyKey(Base):
    """One ``Idempotency-Key`` of a merchant (docs/product.md §6).

    ``fingerprint`` is SHA-256 over method, path and the canonical body; ``resource_id``
    is allocated before the handler runs and becomes the id of what the request creates,
    so a retry after a crash finds that object instead of creating a second one.
    ``locked_until`` bounds how long an ``in_progress`` row refuses a duplicate (409)."""

    __tablename__ = "idempotency_keys"
    merchant_id: Mapped[MerchantId] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(300))
    resource_id: Mapped[str] = mapped_column(String(26))  # a ULID; the handler adds a prefix
    state: Mapped[str] = mapped_column(Status)  # in_progress | done
    locked_until: Mapped[datetime]
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    response_headers: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


# --------------------------------------------------------------------------- console


class ConsoleUser(Base):
    """A person who logs in to the admin console. ``role`` is ``operator`` (every
    merchant) or ``merchant`` (``merchant_id``'s data only). The password is an argon2id
    hash; ``failed_logins`` and ``locked_until`` implement the lockout."""

    __tablename__ = "console_users"
    id: Mapped[Key]
    email: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(Status)
    merchant_id: Mapped[str | None] = mapped_column(ForeignKey("merchants.id"))
    status: Mapped[str] = mapped_column(Status)  # active | disabled
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    # login attempts whose password is being checked (ivr/console/users.py reserves a
    # place before hashing), and when those places lapse (a process died mid-check)
    logins_pending: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    logins_pending_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # second factor (ivr/console/mfa.py): the TOTP secret, AES-GCM-encrypted under the
    # console's key file (None: none set up); enabled once a code from it was entered;
    # the last time step a code was accepted for (a code works once)
    totp_secret: Mapped[str | None] = mapped_column(String(200))
    totp_enabled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)


class ConsoleSession(Base):
    """A logged-in browser. The cookie holds a random token; only its SHA-256 is kept
    here, so a copy of the database does not log anyone in. ``csrf`` is the token every
    POST of this session must carry."""

    __tablename__ = "console_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(token) hex
    user_id: Mapped[str] = mapped_column(ForeignKey("console_users.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    # None: logged in. "code" / "enroll": the password was right and the one-time code
    # (or setting one up) is still to come; such a session opens no page.
    stage: Mapped[str | None] = mapped_column(String(10))
