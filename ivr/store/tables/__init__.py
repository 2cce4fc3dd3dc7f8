"""Every table of the engine's database, one module per area.

The engine database never holds card numbers, expiry dates, birth dates, passwords or
DTMF digits: a card is a vault token plus BIN6 / last 4 / issuer / type, and a call's
step log records prompt ids and outcomes only (THREAT_MODEL.md).

Statuses are plain strings validated by the state machines of
:mod:`ivr.domain.states`; amounts are integers in KRW. Importers use
``from ivr.store.tables import X``; the areas are an internal layout.
"""

from __future__ import annotations

from ivr.store.tables.access import ConsoleSession, ConsoleUser, IdempotencyKey
from ivr.store.tables.base import NAMING, Base, Id, Status
from ivr.store.tables.calls import CallRequest, CallSession, CallStep
from ivr.store.tables.evidence import AuditLog, ConsentRecord, ConsentSeal
from ivr.store.tables.merchants import ApiKey, Customer, Did, Lease, Merchant, PgAccount
from ivr.store.tables.money import (
    BillingKeyRequest,
    Card,
    CardMigration,
    CardMigrationBatch,
    PaymentAttempt,
    PaymentIntent,
    Refund,
    Schedule,
)
from ivr.store.tables.work import (
    AlimtalkMessage,
    Job,
    Notice,
    SmsMessage,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

__all__ = [
    "NAMING",
    "AlimtalkMessage",
    "ApiKey",
    "AuditLog",
    "Base",
    "BillingKeyRequest",
    "CallRequest",
    "CallSession",
    "CallStep",
    "Card",
    "CardMigration",
    "CardMigrationBatch",
    "ConsentRecord",
    "ConsentSeal",
    "ConsoleSession",
    "ConsoleUser",
    "Customer",
    "Did",
    "Id",
    "IdempotencyKey",
    "Job",
    "Lease",
    "Merchant",
    "Notice",
    "PaymentAttempt",
    "PaymentIntent",
    "PgAccount",
    "Refund",
    "Schedule",
    "SmsMessage",
    "Status",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
]
