"""Call requests, call sessions and their step log (prompt ids and outcomes, never digits)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ivr.store.tables.base import Base, Id, Key, MerchantPaged, Status
from ivr.store.types import BigIntPK

# --------------------------------------------------------------------------- calls


class CallRequest(MerchantPaged, Base):
    __tablename__ = "call_requests"
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(Status, index=True)
    did: Mapped[str] = mapped_column(String(16))
    mobile: Mapped[str] = mapped_column(String(16))
    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"))
    product_name: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int | None] = mapped_column(BigInteger)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    card_id: Mapped[str | None] = mapped_column(Id)
    payment_intent_id: Mapped[str | None] = mapped_column(Id)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class CallSession(Base):
    __tablename__ = "call_sessions"
    id: Mapped[Key]
    call_request_id: Mapped[str | None] = mapped_column(ForeignKey("call_requests.id"), index=True)
    channel_id: Mapped[str] = mapped_column(String(100), index=True)
    did: Mapped[str] = mapped_column(String(32))
    caller_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(Status)
    outcome: Mapped[str | None] = mapped_column(String(40))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    # engine.node_id of the engine that served the call (None: before migration 0005)
    node: Mapped[str | None] = mapped_column(String(64))


class CallStep(Base):
    """One step of a call: which prompt played and how the input ended. Never digits:
    ``outcome`` is a word (``ok``, ``invalid``, ``timeout``, ``hangup``, ``repeat``…)."""

    __tablename__ = "call_steps"
    __table_args__ = (UniqueConstraint("session_id", "seq"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("call_sessions.id"))
    seq: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(40))
    prompt_id: Mapped[str | None] = mapped_column(String(60))
    outcome: Mapped[str | None] = mapped_column(String(24))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
