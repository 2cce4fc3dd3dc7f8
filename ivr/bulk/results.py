"""The result file of a bulk job: one line per row of the submitted file, the rows
refused at submission and the processed ones, in file order."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from ivr.bulk.jobs import find_parent, rows_like
from ivr.store.db import Database
from ivr.store.scope import Scope
from ivr.store.tables import Job, PaymentAttempt

COLUMNS = ("row", "ref", "card_id", "amount", "result", "intent_id", "approval_no",
           "customer_id", "request_id", "error")  # fmt: skip


class BulkResults:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def rows(self, merchant_id: str, bulk_id: str) -> list[dict[str, Any]]:
        """Per-row results (the result file): invalid rows and processed rows."""
        scope = Scope.of(merchant_id)
        parent = await find_parent(self.db, scope, bulk_id)
        out: list[dict[str, Any]] = [
            {"row": r["row"], "ref": r.get("ref", ""), "result": "invalid", "error": r["error"]}
            for r in parent.payload["invalid"]
        ]
        async with self.db.sessions() as s:
            rows = select(Job).where(Job.dedupe_key.like(rows_like(bulk_id)))
            jobs = list(await s.scalars(scope.where(rows, Job)))
            approvals = dict(
                (
                    await s.execute(
                        select(PaymentAttempt.intent_id, PaymentAttempt.approval_no).where(
                            PaymentAttempt.intent_id.in_(
                                [j.payload["intent_id"] for j in jobs if j.payload.get("intent_id")]
                            ),
                            PaymentAttempt.status == "succeeded",
                        )
                    )
                ).all()
            )
        for j in jobs:
            p = j.payload
            intent_id = p.get("intent_id")
            out.append({
                "row": p["row"], "ref": p.get("ref", ""), "card_id": p.get("card_id"),
                "amount": p.get("amount"), "result": p.get("result") or j.status,
                "intent_id": intent_id, "approval_no": approvals.get(intent_id or ""),
                "customer_id": p.get("customer_id") if p.get("result") else None,
                "request_id": p.get("request_id") if p.get("result") else None,
                "error": p.get("error"),
            })  # fmt: skip
        return sorted(out, key=lambda r: int(r["row"]))


def results_csv(rows: Sequence[dict[str, Any]]) -> str:
    """:meth:`BulkResults.rows` as the CSV result file (a header line, then a row each)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k) for k in COLUMNS})
    return buf.getvalue()
