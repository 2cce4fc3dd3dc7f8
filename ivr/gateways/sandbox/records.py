"""What the sandbox ledger keeps, and how it is shown in PortOne's v1 field names.

A payment row carries the ``PaymentAnnotation`` fields the connector reads (and the
OpenAPI marks required): ``imp_uid``, ``merchant_uid``, ``amount``, ``cancel_amount``,
``currency``, ``status``, ``sandbox`` plus the card fields; a customer row the
``CustomerAnnotation`` fields. Card numbers are stored masked only.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from ivr.gateways.portone.pgs import provider, rules_for

PG_PROVIDER = "arspay_sandbox"
PG_ID = "sandbox"
# the sandbox's card-slip pages (ivr/gateways/sandbox/receipts.py): not PortOne's
# ``GET /receipts/{imp_uid}``, which is its (token-guarded) cash-receipt API
RECEIPT_PATH = "/sandbox/receipts/"


def _as_pg(pg: str, card_type: int | None) -> dict[str, Any]:
    """How the PG the sandbox plays (``SandboxConfig.pg``) shows a card: its code as
    ``pg_provider``, and ``card_type`` null where the document says it may be."""
    return {
        "pg_provider": provider(pg) if pg else PG_PROVIDER,
        "card_type": None if rules_for(pg).card_type_may_be_null else card_type,
    }


@dataclass(frozen=True)
class CustomerRecord:
    customer_uid: str
    scenario: str
    card_masked: str
    card_name: str
    card_code: str | None
    card_type: int  # 0 credit, 1 check
    inserted: int
    updated: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> CustomerRecord:
        return cls(**{k: row[k] for k in row.keys()})  # noqa: SIM118 - sqlite3.Row


@dataclass(frozen=True)
class CancelRecord:
    amount: int
    reason: str
    cancelled_at: int
    pg_tid: str
    cancellation_id: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> CancelRecord:
        return cls(row["amount"], row["reason"], row["cancelled_at"], row["pg_tid"],
                   row["cancellation_id"])  # fmt: skip


@dataclass(frozen=True)
class PaymentRecord:
    imp_uid: str
    merchant_uid: str
    customer_uid: str | None
    name: str | None
    amount: int
    cancel_amount: int
    status: str  # paid | failed | cancelled
    card_quota: int
    apply_num: str | None
    pg_tid: str
    card_name: str | None
    card_code: str | None
    card_masked: str | None
    card_type: int | None
    scenario: str
    fail_reason: str | None
    started_at: int
    paid_at: int
    failed_at: int
    cancelled_at: int
    channel: str = "api"
    cancels: tuple[CancelRecord, ...] = ()

    @classmethod
    def from_row(cls, row: sqlite3.Row, cancels: tuple[CancelRecord, ...]) -> PaymentRecord:
        fields = {k: row[k] for k in row.keys() if k != "requests"}  # noqa: SIM118
        return cls(**fields, cancels=cancels)

    @property
    def refundable(self) -> int:
        return self.amount - self.cancel_amount if self.status in ("paid", "cancelled") else 0

    def receipt_url(self, origin: str) -> str | None:
        """The sandbox's own receipt page of a paid payment (PortOne ``receipt_url``)."""
        if not origin or self.status not in ("paid", "cancelled"):
            return None
        return f"{origin}{RECEIPT_PATH}{self.imp_uid}"

    def to_portone(self, *, pg: str = "", origin: str = "") -> dict[str, Any]:
        return {
            "imp_uid": self.imp_uid,
            "merchant_uid": self.merchant_uid,
            "pay_method": "card",
            "channel": self.channel,
            "pg_provider": PG_PROVIDER,
            "pg_tid": self.pg_tid,
            "pg_id": PG_ID,
            "sandbox": True,
            "escrow": False,
            "apply_num": self.apply_num,
            "card_code": self.card_code,
            "card_name": self.card_name,
            "card_number": self.card_masked,
            "card_quota": self.card_quota,
            "card_type": self.card_type,
            "name": self.name,
            "amount": self.amount,
            "cancel_amount": self.cancel_amount,
            "currency": "KRW",
            "status": self.status,
            "started_at": self.started_at,
            "paid_at": self.paid_at,
            "failed_at": self.failed_at,
            "cancelled_at": self.cancelled_at,
            "fail_reason": self.fail_reason,
            "cancel_reason": self.cancels[-1].reason if self.cancels else None,
            "receipt_url": self.receipt_url(origin),
            "cancel_history": [
                {
                    "pg_tid": c.pg_tid,
                    "amount": c.amount,
                    "cancelled_at": c.cancelled_at,
                    "reason": c.reason,
                    "cancellation_id": c.cancellation_id,
                }
                for c in self.cancels
            ],
            "customer_uid": self.customer_uid,
            "customer_uid_usage": "payment" if self.customer_uid else None,
        } | _as_pg(pg, self.card_type)


def customer_to_portone(c: CustomerRecord, *, pg: str = "") -> dict[str, Any]:
    return {
        "customer_uid": c.customer_uid,
        "pg_provider": PG_PROVIDER,
        "pg_id": PG_ID,
        "sandbox": True,
        "card_name": c.card_name,
        "card_code": c.card_code,
        "card_number": c.card_masked,
        "card_type": c.card_type,
        "inserted": c.inserted,
        "updated": c.updated,
    } | _as_pg(pg, c.card_type)
