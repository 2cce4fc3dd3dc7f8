"""Durable work: the job queue and the outboxes (webhooks, SMS, payer notices)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ivr.store.tables.base import Base, Id, Key, MerchantId, MerchantPaged, Status
from ivr.store.types import BigIntPK

# --------------------------------------------------------------------------- jobs, outbox


class Job(Base):
    """Durable work item. Claimed with ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
    LOCKED)``; ``dedupe_key`` makes enqueueing the same work twice a no-op."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_run_at", "status", "run_at"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(Status)
    run_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=10)
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    id: Mapped[Key]
    merchant_id: Mapped[MerchantId] = mapped_column(index=True)
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(100))  # whsec_…, needed to sign
    status: Mapped[str] = mapped_column(Status)
    event_types: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class WebhookEvent(MerchantPaged, Base):
    __tablename__ = "webhook_events"
    # its id (evt_…) is the webhook-id
    type: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("event_id", "endpoint_id"),)
    id: Mapped[Key]
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    status: Mapped[str] = mapped_column(Status, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class Notice(MerchantPaged, Base):
    """A payer notice (ivr/notify/notices): what happened, channel-independent — its
    ``kind``, the recipient and the template ``variables`` (never a card number: issuer
    and last 4 at most). Recorded in the transaction of the event; ``dedupe_key``
    (kind + the object's id) makes a second recording of one event a no-op. ``pending``
    until rendered into a channel's message (``routed``, ``channel``)."""

    __tablename__ = "notices"
    kind: Mapped[str] = mapped_column(String(30))
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    subject_id: Mapped[str] = mapped_column(Id)
    mobile: Mapped[str] = mapped_column(String(16))
    variables: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(Status, index=True)
    channel: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]
    routed_at: Mapped[datetime | None]


class AlimtalkMessage(MerchantPaged, Base):
    """A payer notice sent as a KakaoTalk 알림톡 (ivr/notify/alimtalk): the template
    code and its parameters (the notice's variables: never more than the last 4 card
    digits), the receipt button link, and the SMS/LMS text kept for the fallback.
    ``request_id``/``recipient_seq``: the provider's ids once it accepted the message;
    our ``id`` goes with the send as its idempotency key and recipient grouping key, so
    a send whose answer was lost is looked up, not repeated. ``fallback_sms_id``: the
    ``sms_messages`` row queued when it was refused (대체 발송) — set once, under the
    row's lock, so a notice is never both."""

    __tablename__ = "alimtalk_messages"
    notice_id: Mapped[str] = mapped_column(Id, unique=True)
    to: Mapped[str] = mapped_column(String(16))
    template_code: Mapped[str] = mapped_column(String(40))
    parameters: Mapped[dict[str, Any]]
    button_url: Mapped[str | None] = mapped_column(String(500))
    fallback_text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Status, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    request_id: Mapped[str | None] = mapped_column(String(100))
    recipient_seq: Mapped[int | None] = mapped_column(Integer)
    result_code: Mapped[str | None] = mapped_column(String(40))
    last_error: Mapped[str | None] = mapped_column(String(500))
    fallback_sms_id: Mapped[str | None] = mapped_column(Id)
    created_at: Mapped[datetime]
    next_try_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]


class SmsMessage(MerchantPaged, Base):
    __tablename__ = "sms_messages"
    call_request_id: Mapped[str | None] = mapped_column(Id, index=True)
    kind: Mapped[str] = mapped_column(String(20))  # registration | payment | receipt | notice
    to: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    adapter: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(Status, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_ref: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    notice_id: Mapped[str | None] = mapped_column(Id)  # kind "notice": the notice it renders
