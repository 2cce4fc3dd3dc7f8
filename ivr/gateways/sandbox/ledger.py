"""The sandbox's persistent ledger: one SQLite file, one writer thread.

Every operation runs on a single worker thread that owns the connection, so a
read-then-write (``charge``, ``cancel``) is atomic with respect to every other request.

One ``merchant_uid`` may carry several payment records, as at PortOne (its v1 API
documents "동일한 merchant_uid가 여러 건 존재하는 경우" and ``/payments/findAll``): a
failed order may be tried again under the same ``merchant_uid``, which records a new
payment. An order that was paid (or is still being processed) refuses another charge —
"이미 결제가 이뤄진 적이 있는 merchant_uid로는 결제요청이 불가능합니다" — so a
``merchant_uid`` is paid at most once, whatever the timing of the requests for it.
WAL mode: a committed payment survives the sandbox process being killed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from ivr.gateways.sandbox.cards import Failure
from ivr.gateways.sandbox.records import CancelRecord, CustomerRecord, PaymentRecord

T = TypeVar("T")

SCHEMA_VERSION = 2  # 2: several payments per merchant_uid (1 had it UNIQUE)
PAYMENTS_TABLE = """CREATE TABLE IF NOT EXISTS payments (
    imp_uid TEXT PRIMARY KEY, merchant_uid TEXT NOT NULL, customer_uid TEXT,
    name TEXT, amount INTEGER NOT NULL, cancel_amount INTEGER NOT NULL, status TEXT NOT NULL,
    card_quota INTEGER NOT NULL, apply_num TEXT, pg_tid TEXT NOT NULL, card_name TEXT,
    card_code TEXT, card_masked TEXT, card_type INTEGER, scenario TEXT NOT NULL,
    fail_reason TEXT, started_at INTEGER NOT NULL, paid_at INTEGER NOT NULL,
    failed_at INTEGER NOT NULL, cancelled_at INTEGER NOT NULL, channel TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 1)"""
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS customers (
    customer_uid TEXT PRIMARY KEY, scenario TEXT NOT NULL, card_masked TEXT NOT NULL,
    card_name TEXT NOT NULL, card_code TEXT, card_type INTEGER NOT NULL,
    inserted INTEGER NOT NULL, updated INTEGER NOT NULL);
{PAYMENTS_TABLE};
CREATE INDEX IF NOT EXISTS payments_merchant_uid ON payments (merchant_uid);
CREATE TABLE IF NOT EXISTS cancels (
    id INTEGER PRIMARY KEY AUTOINCREMENT, imp_uid TEXT NOT NULL REFERENCES payments(imp_uid),
    amount INTEGER NOT NULL, reason TEXT NOT NULL, cancelled_at INTEGER NOT NULL,
    pg_tid TEXT NOT NULL, cancellation_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS order_requests (
    merchant_uid TEXT PRIMARY KEY, requests INTEGER NOT NULL);
"""

_PAYMENT_COLUMNS = (
    "imp_uid", "merchant_uid", "customer_uid", "name", "amount", "cancel_amount", "status",
    "card_quota", "apply_num", "pg_tid", "card_name", "card_code", "card_masked", "card_type",
    "scenario", "fail_reason", "started_at", "paid_at", "failed_at", "cancelled_at", "channel",
)  # fmt: skip

CHECKSUM_MISMATCH = Failure("CHECKSUM_MISMATCH", "취소 가능 잔액(checksum)이 일치하지 않습니다.")
EXCEEDS = Failure("EXCEEDS_REFUNDABLE", "취소 요청 금액이 취소 가능 잔액을 초과합니다.")
ALREADY_CANCELLED = Failure("ALREADY_CANCELLED", "이미 전액 취소된 결제건입니다.")
NOT_PAID = Failure("NOT_PAID", "결제완료 상태가 아니어서 취소할 수 없습니다.")
CANCEL_NOT_FOUND = Failure("NOT_FOUND", "취소할 결제건이 존재하지 않습니다.")
DUPLICATE_PAID = Failure(
    "DUPLICATED_MERCHANT_UID",
    "이미 결제가 이뤄진 적이 있는 merchant_uid로는 결제요청이 불가능합니다.",
)
DUPLICATE_WAITING = Failure("PAYMENT_IN_PROGRESS", "결제가 진행 중인 merchant_uid입니다.")
_PAID = ("paid", "cancelled")


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-ledger")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the ledger's thread, where :attr:`db` may be used: for the
        sandbox's V2 mount, which keeps its billing keys in a table of its own."""
        return await self._run(fn, *args)

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "ledger not open"
        return self._db

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None)  # explicit BEGIN/COMMIT
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        _upgrade(db)
        db.executescript(SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self.db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    # --- customers -------------------------------------------------------------------
    async def put_customer(self, c: CustomerRecord) -> None:
        await self._run(self._put_customer, c)

    def _put_customer(self, c: CustomerRecord) -> None:
        self.db.execute(
            "INSERT INTO customers VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(customer_uid) DO UPDATE"
            " SET scenario=excluded.scenario, card_masked=excluded.card_masked,"
            " card_name=excluded.card_name, card_code=excluded.card_code,"
            " card_type=excluded.card_type, updated=excluded.updated",
            (c.customer_uid, c.scenario, c.card_masked, c.card_name, c.card_code, c.card_type,
             c.inserted, c.updated),
        )  # fmt: skip

    async def delete_customer(self, customer_uid: str) -> bool:
        return await self._run(self._delete_customer, customer_uid)

    def _delete_customer(self, customer_uid: str) -> bool:
        cur = self.db.execute("DELETE FROM customers WHERE customer_uid=?", (customer_uid,))
        return cur.rowcount > 0

    async def customer(self, customer_uid: str) -> CustomerRecord | None:
        return await self._run(self._customer, customer_uid)

    def _customer(self, customer_uid: str) -> CustomerRecord | None:
        row = self.db.execute(
            "SELECT * FROM customers WHERE customer_uid=?", (customer_uid,)
        ).fetchone()
        return CustomerRecord.from_row(row) if row else None

    # --- payments --------------------------------------------------------------------
    def _cancels(self, imp_uid: str) -> tuple[CancelRecord, ...]:
        return tuple(
            CancelRecord.from_row(c)
            for c in self.db.execute(
                "SELECT * FROM cancels WHERE imp_uid=? ORDER BY id", (imp_uid,)
            )
        )

    def _records(self, merchant_uid: str) -> list[PaymentRecord]:
        """Every payment of the order, newest first (PortOne's default ``-started``)."""
        rows = self.db.execute(
            "SELECT * FROM payments WHERE merchant_uid=? ORDER BY started_at DESC, rowid DESC",
            (merchant_uid,),
        ).fetchall()
        return [PaymentRecord.from_row(r, self._cancels(r["imp_uid"])) for r in rows]

    def _payment(self, merchant_uid: str, status: str | None = None) -> PaymentRecord | None:
        for p in self._records(merchant_uid):
            if status is None or p.status == status:
                return p
        return None

    async def payment(self, merchant_uid: str, status: str | None = None) -> PaymentRecord | None:
        """The order's newest payment (with ``status``, when given) — PortOne's
        ``/payments/find/{merchant_uid}[/{status}]``."""
        return await self._run(self._payment, merchant_uid, status)

    def _by_imp_uid(self, imp_uid: str) -> PaymentRecord | None:
        row = self.db.execute("SELECT * FROM payments WHERE imp_uid=?", (imp_uid,)).fetchone()
        return PaymentRecord.from_row(row, self._cancels(imp_uid)) if row is not None else None

    async def by_imp_uid(self, imp_uid: str) -> PaymentRecord | None:
        """One payment by its PG id (the receipt page)."""
        return await self._run(self._by_imp_uid, imp_uid)

    async def payments(self, merchant_uid: str, status: str | None = None) -> list[PaymentRecord]:
        """Every payment of the order, newest first — ``/payments/findAll``."""
        found = await self._run(self._records, merchant_uid)
        return [p for p in found if status is None or p.status == status]

    async def note_request(self, merchant_uid: str) -> None:
        """Count every charge request for an order, recorded or not (for the tests)."""
        await self._run(self._note_request, merchant_uid)

    def _note_request(self, merchant_uid: str) -> None:
        self.db.execute(
            "INSERT INTO order_requests VALUES (?, 1) ON CONFLICT(merchant_uid)"
            " DO UPDATE SET requests = requests + 1",
            (merchant_uid,),
        )

    async def charge(
        self, merchant_uid: str, decide: Callable[[], PaymentRecord]
    ) -> PaymentRecord | Failure:
        """Record ``decide()`` as a new payment of the order, unless the order was paid
        or is being processed: then the duplicate refusal (nothing recorded)."""
        return await self._run(self._charge, merchant_uid, decide)

    def _charge(
        self, merchant_uid: str, decide: Callable[[], PaymentRecord]
    ) -> PaymentRecord | Failure:
        for existing in self._records(merchant_uid):
            if existing.status in _PAID:
                return DUPLICATE_PAID
            if existing.status == "ready":
                return DUPLICATE_WAITING
        p = decide()
        marks = ",".join("?" * len(_PAYMENT_COLUMNS))
        self.db.execute(
            f"INSERT INTO payments ({','.join(_PAYMENT_COLUMNS)}) VALUES ({marks})",  # noqa: S608
            tuple(getattr(p, c) for c in _PAYMENT_COLUMNS),
        )
        return p

    async def finish(self, imp_uid: str, final: PaymentRecord) -> PaymentRecord:
        """A ``ready`` payment (``slow_processing``) becomes ``final``'s status."""
        return await self._run(self._finish, imp_uid, final)

    def _finish(self, imp_uid: str, final: PaymentRecord) -> PaymentRecord:
        self.db.execute(
            "UPDATE payments SET status=?, apply_num=?, fail_reason=?, paid_at=?, failed_at=?"
            " WHERE imp_uid=? AND status='ready'",
            (final.status, final.apply_num, final.fail_reason, final.paid_at, final.failed_at,
             imp_uid),
        )  # fmt: skip
        row = self.db.execute("SELECT * FROM payments WHERE imp_uid=?", (imp_uid,)).fetchone()
        return PaymentRecord.from_row(row, self._cancels(imp_uid))

    async def cancel(
        self,
        merchant_uid: str,
        amount: int | None,
        checksum: int | None,
        entry: CancelRecord,
    ) -> PaymentRecord | Failure:
        """Cancel ``amount`` (``None``: all that is left) after PortOne's checks."""
        return await self._run(self._cancel, merchant_uid, amount, checksum, entry)

    def _cancel(
        self, merchant_uid: str, amount: int | None, checksum: int | None, entry: CancelRecord
    ) -> PaymentRecord | Failure:
        records = self._records(merchant_uid)
        if not records:
            return CANCEL_NOT_FOUND
        p = next((r for r in records if r.status in _PAID), records[0])
        if p.status == "cancelled":
            return ALREADY_CANCELLED
        if p.status != "paid":
            return NOT_PAID
        if checksum is not None and checksum != p.refundable:
            return CHECKSUM_MISMATCH
        take = p.refundable if amount is None else amount
        if take > p.refundable:
            return EXCEEDS
        total = p.cancel_amount + take
        status = "cancelled" if total == p.amount else "paid"
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                "UPDATE payments SET cancel_amount=?, status=?, cancelled_at=? WHERE imp_uid=?",
                (total, status, entry.cancelled_at if status == "cancelled" else 0, p.imp_uid),
            )
            self.db.execute(
                "INSERT INTO cancels (imp_uid, amount, reason, cancelled_at, pg_tid,"
                " cancellation_id) VALUES (?,?,?,?,?,?)",
                (p.imp_uid, take, entry.reason, entry.cancelled_at, entry.pg_tid,
                 entry.cancellation_id),
            )  # fmt: skip
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        row = self.db.execute("SELECT * FROM payments WHERE imp_uid=?", (p.imp_uid,)).fetchone()
        return PaymentRecord.from_row(row, self._cancels(p.imp_uid))

    # --- test-only views -------------------------------------------------------------
    async def order_view(self, merchant_uid: str) -> dict[str, Any]:
        return await self._run(self._order_view, merchant_uid)

    def _order_view(self, merchant_uid: str) -> dict[str, Any]:
        records = self._records(merchant_uid)
        row = self.db.execute(
            "SELECT requests FROM order_requests WHERE merchant_uid=?", (merchant_uid,)
        ).fetchone()
        return {
            "merchant_uid": merchant_uid,
            "charge_requests": row["requests"] if row else 0,  # every request, 500s too
            "paid": sum(p.status in _PAID for p in records),  # never more than 1
            "payments": [p.to_portone() for p in records],  # newest first
        }

    async def summary(self) -> dict[str, int]:
        return await self._run(self._summary)

    def _summary(self) -> dict[str, int]:
        row = self.db.execute(
            "SELECT COUNT(*) AS payments,"
            " COALESCE(SUM(status='paid'), 0) AS paid,"
            " COALESCE(SUM(status='failed'), 0) AS failed,"
            " COALESCE(SUM(status='cancelled'), 0) AS cancelled,"
            " COALESCE(SUM(CASE WHEN status IN ('paid','cancelled') THEN amount END), 0)"
            "   AS paid_amount,"
            " COALESCE(SUM(cancel_amount), 0) AS cancelled_amount"
            " FROM payments"
        ).fetchone()
        out = {k: int(row[k]) for k in row.keys()}  # noqa: SIM118 - sqlite3.Row
        out["charge_requests"] = int(
            self.db.execute("SELECT COALESCE(SUM(requests), 0) FROM order_requests").fetchone()[0]
        )
        out["customers"] = int(self.db.execute("SELECT COUNT(*) FROM customers").fetchone()[0])
        return out


def _upgrade(db: sqlite3.Connection) -> None:
    """A ledger of schema 1 (``merchant_uid`` UNIQUE) gets schema 2's table, rows kept."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    has_payments = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='payments'"
    ).fetchone()
    if version >= SCHEMA_VERSION or not has_payments:
        return
    columns = ",".join((*_PAYMENT_COLUMNS, "requests"))
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE payments RENAME TO payments_v1")
        db.execute(PAYMENTS_TABLE)
        db.execute(f"INSERT INTO payments ({columns}) SELECT {columns} FROM payments_v1")  # noqa: S608
        db.execute("DROP TABLE payments_v1")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
