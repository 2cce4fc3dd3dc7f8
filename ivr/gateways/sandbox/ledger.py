"""The sandbox's persistent ledger: one SQLite file, one writer thread.

Every operation runs on a single worker thread that owns the connection, so a
read-then-write (``charge``, ``cancel``) is atomic with respect to every other request:
a second charge with the same ``merchant_uid`` — concurrent or later — gets the payment
already recorded, never a new one (and ``merchant_uid`` is UNIQUE as a backstop).
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

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    customer_uid TEXT PRIMARY KEY, scenario TEXT NOT NULL, card_masked TEXT NOT NULL,
    card_name TEXT NOT NULL, card_code TEXT, card_type INTEGER NOT NULL,
    inserted INTEGER NOT NULL, updated INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS payments (
    imp_uid TEXT PRIMARY KEY, merchant_uid TEXT NOT NULL UNIQUE, customer_uid TEXT,
    name TEXT, amount INTEGER NOT NULL, cancel_amount INTEGER NOT NULL, status TEXT NOT NULL,
    card_quota INTEGER NOT NULL, apply_num TEXT, pg_tid TEXT NOT NULL, card_name TEXT,
    card_code TEXT, card_masked TEXT, card_type INTEGER, scenario TEXT NOT NULL,
    fail_reason TEXT, started_at INTEGER NOT NULL, paid_at INTEGER NOT NULL,
    failed_at INTEGER NOT NULL, cancelled_at INTEGER NOT NULL, channel TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 1);
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


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-ledger")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args))

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
        db.executescript(SCHEMA)
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
    def _payment(self, merchant_uid: str) -> PaymentRecord | None:
        row = self.db.execute(
            "SELECT * FROM payments WHERE merchant_uid=?", (merchant_uid,)
        ).fetchone()
        if row is None:
            return None
        cancels = tuple(
            CancelRecord.from_row(c)
            for c in self.db.execute(
                "SELECT * FROM cancels WHERE imp_uid=? ORDER BY id", (row["imp_uid"],)
            )
        )
        return PaymentRecord.from_row(row, cancels)

    async def payment(self, merchant_uid: str) -> PaymentRecord | None:
        return await self._run(self._payment, merchant_uid)

    async def note_request(self, merchant_uid: str) -> None:
        """Count every charge request for an order, recorded or not (for the tests)."""
        await self._run(self._note_request, merchant_uid)

    def _note_request(self, merchant_uid: str) -> None:
        self.db.execute(
            "INSERT INTO order_requests VALUES (?, 1) ON CONFLICT(merchant_uid)"
            " DO UPDATE SET requests = requests + 1",
            (merchant_uid,),
        )

    async def replay(self, merchant_uid: str) -> PaymentRecord | None:
        """The order's recorded payment, counted as one more request for it."""
        return await self._run(self._replay, merchant_uid)

    def _replay(self, merchant_uid: str) -> PaymentRecord | None:
        existing = self._payment(merchant_uid)
        if existing is not None:
            self.db.execute(
                "UPDATE payments SET requests = requests + 1 WHERE merchant_uid=?",
                (merchant_uid,),
            )
        return existing

    async def charge(
        self, merchant_uid: str, decide: Callable[[], PaymentRecord]
    ) -> tuple[PaymentRecord, bool]:
        """The order's payment, recording ``decide()`` first if there is none.
        Returns ``(payment, created)``."""
        return await self._run(self._charge, merchant_uid, decide)

    def _charge(
        self, merchant_uid: str, decide: Callable[[], PaymentRecord]
    ) -> tuple[PaymentRecord, bool]:
        existing = self._replay(merchant_uid)
        if existing is not None:  # a concurrent request for the same order got here first
            return existing, False
        p = decide()
        marks = ",".join("?" * len(_PAYMENT_COLUMNS))
        self.db.execute(
            f"INSERT INTO payments ({','.join(_PAYMENT_COLUMNS)}) VALUES ({marks})",  # noqa: S608
            tuple(getattr(p, c) for c in _PAYMENT_COLUMNS),
        )
        return p, True

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
        p = self._payment(merchant_uid)
        if p is None:
            return CANCEL_NOT_FOUND
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
        updated = self._payment(merchant_uid)
        assert updated is not None
        return updated

    # --- test-only views -------------------------------------------------------------
    async def order_view(self, merchant_uid: str) -> dict[str, Any]:
        return await self._run(self._order_view, merchant_uid)

    def _order_view(self, merchant_uid: str) -> dict[str, Any]:
        p = self._payment(merchant_uid)
        row = self.db.execute(
            "SELECT requests FROM order_requests WHERE merchant_uid=?", (merchant_uid,)
        ).fetchone()
        replays = self.db.execute(
            "SELECT requests - 1 FROM payments WHERE merchant_uid=?", (merchant_uid,)
        ).fetchone()
        return {
            "merchant_uid": merchant_uid,
            "charge_requests": row["requests"] if row else 0,  # every request, 500s too
            "replays": replays[0] if replays else 0,  # answered from the ledger
            "payments": [p.to_portone()] if p else [],
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
