"""Every table of the engine's database.

The engine database never holds card numbers, expiry dates, birth dates, passwords or
DTMF digits: a card is a vault token plus BIN6 / last 4 / issuer / type, and a call's
step log records prompt ids and outcomes only (THREAT_MODEL.md).

Statuses are plain strings validated by the state machines of
:mod:`ivr.domain.states`; amounts are integers in KRW.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ivr.store.types import BigIntPK, UtcDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = String(40)
Status = String(24)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012


# --------------------------------------------------------------------------- merchants


class Merchant(Base):
    __tablename__ = "merchants"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))  # 상호, read out in calls and SMS
    status: Mapped[str] = mapped_column(Status)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # per-merchant overrides
    created_at: Mapped[datetime]


class ApiKey(Base):
    """A merchant API key. Only a SHA-256 of the secret is kept (the secret has 256
    bits of entropy, so a slow hash adds nothing); ``prefix`` finds the row."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
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
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    external_ref: Mapped[str | None] = mapped_column(String(100))  # merchant's own id
    name: Mapped[str] = mapped_column(String(100), default="")
    mobile: Mapped[str] = mapped_column(String(16), index=True)  # normalized, 010XXXXXXXX
    created_at: Mapped[datetime]


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
    a DID serves any number of different mobiles at once (PRODUCT section 2)."""

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
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    did: Mapped[str] = mapped_column(ForeignKey("dids.number"))
    mobile: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(24))
    call_request_id: Mapped[str | None] = mapped_column(Id, index=True)
    status: Mapped[str] = mapped_column(Status)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    cooldown_until: Mapped[datetime | None]


# --------------------------------------------------------------------------- calls


class CallRequest(Base):
    __tablename__ = "call_requests"
    __table_args__ = (Index("ix_call_requests_merchant_id_id", "merchant_id", "id"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
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
    id: Mapped[str] = mapped_column(Id, primary_key=True)
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


# --------------------------------------------------------------------------- cards, payments


class Card(Base):
    __tablename__ = "cards"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
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


class PaymentIntent(Base):
    __tablename__ = "payment_intents"
    __table_args__ = (Index("ix_payment_intents_merchant_id_id", "merchant_id", "id"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
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
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    intent_id: Mapped[str] = mapped_column(ForeignKey("payment_intents.id"), index=True)
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Status, index=True)
    pg_tx_id: Mapped[str | None] = mapped_column(String(100))
    approval_no: Mapped[str | None] = mapped_column(String(20))
    decline_code: Mapped[str | None] = mapped_column(String(60))
    decline_class: Mapped[str | None] = mapped_column(String(8))  # soft | hard
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    sends: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class Refund(Base):
    """One cancel request to the PG, committed before it is sent. ``checksum`` is the
    refundable balance sent with it (PortOne refuses the cancel when its own differs),
    which makes re-sending it safe and tells, from the PG's cancelled amount, whether
    it was applied. At most one refund of an intent is open at a time."""

    __tablename__ = "refunds"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
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
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    status: Mapped[str] = mapped_column(Status, index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Schedule(Base):
    __tablename__ = "schedules"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
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
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(100))  # whsec_…, needed to sign
    status: Mapped[str] = mapped_column(Status)
    event_types: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class WebhookEvent(Base):
    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_merchant_id_id", "merchant_id", "id"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)  # evt_…, the webhook-id
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    type: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("event_id", "endpoint_id"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    status: Mapped[str] = mapped_column(Status, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class SmsMessage(Base):
    __tablename__ = "sms_messages"
    __table_args__ = (Index("ix_sms_messages_merchant_id_id", "merchant_id", "id"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
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


# --------------------------------------------------------------------------- API


class IdempotencyKey(Base):
    """One ``Idempotency-Key`` of a merchant (PRODUCT section 6).

    ``fingerprint`` is SHA-256 over method, path and the canonical body; ``resource_id``
    is allocated before the handler runs and becomes the id of what the request creates,
    so a retry after a crash finds that object instead of creating a second one.
    ``locked_until`` bounds how long an ``in_progress`` row refuses a duplicate (409)."""

    __tablename__ = "idempotency_keys"
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
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
    id: Mapped[str] = mapped_column(Id, primary_key=True)
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


# --------------------------------------------------------------------------- evidence, audit


class ConsentRecord(Base):
    """Append-only, chained evidence of a consent given in a call (PRODUCT 4.3).

    ``seq`` orders the chain; ``prev_hash`` is the previous record's ``hash``; ``hash``
    is SHA-256 over the canonical JSON of every other column but ``mac``; ``mac`` is the
    keyed chain MAC over ``seq``, ``hash`` and the previous record's ``mac`` (NULL on
    records written before keyed sealing, which :class:`ConsentSeal` covers). Database
    triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL), and an INSERT
    without a MAC (:mod:`ivr.consent`)."""

    __tablename__ = "consent_records"
    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(Id, unique=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
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
