"""The ledger's rows in V2's shapes (``Payment``, ``BillingKeyInfo``,
``PaymentCancellation``) and the V2 billing keys, kept in a table of their own.

V2 issues the billing key itself (``billing-key-<uuid>``): it is the ``customer_uid`` of
the ledger's customer row (card scenario, masked number, issuer), and
``v2_billing_keys`` adds what V2 shows of it: the merchant's ``customer.id``, the store,
ISSUED or DELETED. A V2 payment is a ledger payment (``merchant_uid`` = ``paymentId``,
``customer_uid`` = billing key), so the duplicate rule and the cancel checks are the
ledger's.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Final

from ivr.gateways.sandbox.records import CancelRecord, CustomerRecord, PaymentRecord
from ivr.gateways.sandbox.v2.answers import rfc3339

SCHEMA = """
CREATE TABLE IF NOT EXISTS v2_billing_keys (
    billing_key TEXT PRIMARY KEY, customer_id TEXT, store_id TEXT NOT NULL,
    status TEXT NOT NULL, issued_at INTEGER NOT NULL, deleted_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS v2_billing_keys_customer ON v2_billing_keys (customer_id);
"""
PG_PROVIDER: Final = "KSNET"  # a documented PgProvider value; the sandbox is none of them
MERCHANT_ID: Final = "merchant-arspay-sandbox"
# The sandbox's PortOne card codes (v1 card_code) as V2 issuer codes.
ISSUERS: Final = {
    "361": "BC_CARD",
    "381": "KOOKMIN_CARD",
    "366": "SHINHAN_CARD",
    "365": "SAMSUNG_CARD",
    "367": "HYUNDAI_CARD",
    "368": "LOTTE_CARD",
    "374": "HANA_CARD",
    "371": "NH_CARD",
    "041": "WOORI_CARD",
}


@dataclass(frozen=True)
class KeyRow:
    billing_key: str
    customer_id: str | None
    store_id: str
    status: str  # ISSUED | DELETED
    issued_at: int
    deleted_at: int


def create_schema(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)


def put_key(db: sqlite3.Connection, k: KeyRow) -> None:
    db.execute(
        "INSERT INTO v2_billing_keys VALUES (?,?,?,?,?,?)",
        (k.billing_key, k.customer_id, k.store_id, k.status, k.issued_at, k.deleted_at),
    )


def get_key(db: sqlite3.Connection, billing_key: str) -> KeyRow | None:
    row = db.execute("SELECT * FROM v2_billing_keys WHERE billing_key=?", (billing_key,)).fetchone()
    return KeyRow(*tuple(row)) if row else None


def find_keys(
    db: sqlite3.Connection, customer_id: str | None, statuses: tuple[str, ...]
) -> list[KeyRow]:
    """Newest issue first; ``statuses`` empty = any."""
    sql, args = "SELECT * FROM v2_billing_keys WHERE 1=1", []
    if customer_id is not None:
        sql, args = sql + " AND customer_id=?", [customer_id]
    if statuses:
        sql += f" AND status IN ({','.join('?' * len(statuses))})"
        args += list(statuses)
    rows = db.execute(sql + " ORDER BY issued_at DESC, rowid DESC", args).fetchall()
    return [KeyRow(*tuple(r)) for r in rows]


def delete_key(db: sqlite3.Connection, billing_key: str, now: int) -> bool:
    cur = db.execute(
        "UPDATE v2_billing_keys SET status='DELETED', deleted_at=?"
        " WHERE billing_key=? AND status='ISSUED'",
        (now, billing_key),
    )
    return cur.rowcount > 0


def channel(key: str) -> dict[str, Any]:
    """``SelectedChannel``."""
    return {
        "type": "TEST",
        "id": "channel-id-arspay-sandbox",
        "key": key,
        "name": "arspay sandbox",
        "pgProvider": PG_PROVIDER,
        "pgMerchantId": "arspay-sandbox",
    }


def card(
    masked: str | None, code: str | None, name: str | None, card_type: int | None
) -> dict[str, Any]:
    """``Card``."""
    out: dict[str, Any] = {}
    if code in ISSUERS:
        out["issuer"] = out["publisher"] = ISSUERS[code]
    if name:
        out["name"] = name
    if card_type is not None:
        out["type"] = "DEBIT" if card_type == 1 else "CREDIT"
    if masked:
        out["number"], out["bin"] = masked, masked[:6]
    out["ownerType"], out["brand"] = "PERSONAL", "LOCAL"
    return out


def key_info(k: KeyRow, c: CustomerRecord, channel_key: str) -> dict[str, Any]:
    """``IssuedBillingKeyInfo`` / ``DeletedBillingKeyInfo``."""
    out: dict[str, Any] = {
        "status": k.status,
        "billingKey": k.billing_key,
        "merchantId": MERCHANT_ID,
        "storeId": k.store_id,
        "methods": [
            {
                "type": "BillingKeyPaymentMethodCard",
                "card": card(c.card_masked, c.card_code, c.card_name, c.card_type),
            }
        ],
        "channels": [channel(channel_key)],
        "customer": {"id": k.customer_id} if k.customer_id else {},
        "requestedAt": rfc3339(k.issued_at),
        "issuedAt": rfc3339(k.issued_at),
    }
    if k.status == "DELETED":
        out["deletedAt"] = rfc3339(k.deleted_at)
    return out


_STATUS: Final = {"paid": "PAID", "failed": "FAILED", "cancelled": "CANCELLED", "ready": "READY"}


def status(p: PaymentRecord) -> str:
    if p.status == "paid" and p.cancel_amount:
        return "PARTIAL_CANCELLED"
    return _STATUS.get(p.status, "READY")


def cancellation(c: CancelRecord) -> dict[str, Any]:
    """``SucceededPaymentCancellation``."""
    return {
        "status": "SUCCEEDED",
        "id": c.cancellation_id,
        "pgCancellationId": c.pg_tid,
        "totalAmount": c.amount,
        "taxFreeAmount": 0,
        "vatAmount": 0,
        "reason": c.reason,
        "cancelledAt": rfc3339(c.cancelled_at),
        "requestedAt": rfc3339(c.cancelled_at),
    }


def payment(p: PaymentRecord, store_id: str, channel_key: str, origin: str = "") -> dict[str, Any]:
    """``Payment`` (one of PaidPayment, FailedPayment, … by ``status``); ``origin``: the
    sandbox's, for ``receiptUrl`` (its own receipt page, as v1's ``receipt_url``)."""
    st = status(p)
    method: dict[str, Any] = {
        "type": "PaymentMethodCard",
        "card": card(p.card_masked, p.card_code, p.card_name, p.card_type),
    }
    if p.apply_num:
        method["approvalNumber"] = p.apply_num
    if p.card_quota:
        method["installment"] = {"month": p.card_quota, "isInterestFree": False}
    changed = max(
        p.started_at, p.paid_at, p.failed_at, p.cancelled_at, *(c.cancelled_at for c in p.cancels)
    )
    out: dict[str, Any] = {
        "status": st,
        "id": p.merchant_uid,
        "transactionId": p.imp_uid,
        "merchantId": MERCHANT_ID,
        "storeId": store_id,
        "method": method,
        "channel": channel(channel_key),
        "version": "V2",
        "requestedAt": rfc3339(p.started_at),
        "updatedAt": rfc3339(changed),
        "statusChangedAt": rfc3339(changed),
        "orderName": p.name or "",
        "amount": {
            "total": p.amount,
            "taxFree": 0,
            "vat": 0,
            "supply": p.amount,
            "discount": 0,
            "paid": p.amount if p.paid_at else 0,
            "cancelled": p.cancel_amount,
            "cancelledTaxFree": 0,
        },
        "currency": "KRW",
        "customer": {},
        "origin": {"platformType": "API", "ipAddress": "127.0.0.1"},
    }
    if p.customer_uid:
        out["billingKey"] = p.customer_uid
    if p.paid_at:
        out["paidAt"], out["pgTxId"] = rfc3339(p.paid_at), p.pg_tid
    if st == "PAID":
        out["disputes"] = []
    if st in ("PAID", "PARTIAL_CANCELLED", "CANCELLED"):
        out["cancellations"] = [cancellation(c) for c in p.cancels]
        if receipt := p.receipt_url(origin):
            out["receiptUrl"] = receipt
    if st in ("PARTIAL_CANCELLED", "CANCELLED"):
        out["cancelledAt"] = rfc3339(max(c.cancelled_at for c in p.cancels))
    if st == "FAILED":
        out["failedAt"] = rfc3339(p.failed_at)
        code, _, message = (p.fail_reason or "").partition("] ")
        out["failure"] = {
            "reason": p.fail_reason or "",
            "pgCode": code.lstrip("["),
            "pgMessage": message,
        }
    return out
