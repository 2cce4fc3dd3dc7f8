"""The result file of a bulk job: one line per row of the submitted file, the rows
refused at submission and the processed ones, in file order — in the format the file
was uploaded in (:func:`result_file`): .xlsx for .xlsx, CP949 CSV for CP949 CSV, else
UTF-8 CSV (or JSON when asked).

A cell that starts with ``= + - @`` (or a tab or CR) is written with a leading ``'``:
a spreadsheet would take it for a formula (CSV injection), and a row's ``ref`` and
error text come from the merchant's file."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ivr.bulk import xlsx
from ivr.bulk.files import Source
from ivr.bulk.jobs import find_parent, rows_like
from ivr.store.db import Database
from ivr.store.scope import Scope
from ivr.store.tables import Job, PaymentAttempt

COLUMNS = ("row", "ref", "card_id", "amount", "result", "intent_id", "approval_no",
           "customer_id", "request_id", "error")  # fmt: skip
FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")
CSV_MEDIA = "text/csv; charset=utf-8"
CP949_MEDIA = "text/csv; charset=euc-kr"  # the WHATWG label browsers read as CP949


def spreadsheet_safe(value: Any) -> Any:
    """``value``, with a ``'`` before text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_LEAD):
        return "'" + value
    return value


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

    async def source(self, merchant_id: str, bulk_id: str) -> Source:
        """What the job's file was (its result file is written the same way)."""
        parent = await find_parent(self.db, Scope.of(merchant_id), bulk_id)
        return Source.of(parent.payload.get("file"))


def results_csv(rows: Sequence[dict[str, Any]]) -> str:
    """:meth:`BulkResults.rows` as the CSV result file (a header line, then a row each)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: spreadsheet_safe(r.get(k)) for k in COLUMNS})
    return buf.getvalue()


def results_xlsx(rows: Sequence[dict[str, Any]]) -> bytes:
    """:meth:`BulkResults.rows` as an .xlsx result file."""
    return xlsx.write_sheet(COLUMNS, ([spreadsheet_safe(r.get(k)) for k in COLUMNS] for r in rows))


@dataclass(frozen=True, slots=True)
class ResultFile:
    body: bytes
    media_type: str
    extension: str


def result_file(rows: Sequence[dict[str, Any]], source: Source,
                fmt: str | None = None) -> ResultFile:  # fmt: skip
    """The result file in ``fmt`` (``csv``, ``xlsx``), by default the uploaded file's
    format; a CSV is CP949 when the upload was (a character CP949 lacks becomes ``?``)."""
    fmt = fmt or ("xlsx" if source.format == "xlsx" else "csv")
    if fmt == "xlsx":
        return ResultFile(results_xlsx(rows), xlsx.MEDIA_TYPE, "xlsx")
    text = results_csv(rows)
    if source.format == "csv" and source.encoding == "cp949":
        return ResultFile(text.encode("cp949", errors="replace"), CP949_MEDIA, "csv")
    return ResultFile(text.encode(), CSV_MEDIA, "csv")
