"""Submitting a bulk file: every row checked, the valid ones stored as row jobs and the
refused ones kept with the job (row number, ``ref``, reason), in one transaction.

A worker of the row kind takes the rows from there: charges
(:class:`~ivr.bulk.charges.ChargeWorker`) or registrations
(:class:`~ivr.bulk.registration_worker.RegistrationWorker`). The storage is described
in :mod:`ivr.bulk.jobs`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ivr.audit import audit
from ivr.bulk import charge_rows
from ivr.bulk.completion import Completion
from ivr.bulk.files import read_file
from ivr.bulk.jobs import KINDS, PARENT, ROW_KIND, row_key
from ivr.bulk.registrations import check_registration_row
from ivr.bulk.rows import safe_ref
from ivr.clock import Clock
from ivr.domain.ids import new_id
from ivr.errors import ArspayError, InvalidInput
from ivr.jobs.queue import JobQueue
from ivr.store.db import Database

RowCheck = Callable[[dict[str, Any]], dict[str, Any]]  # a raw row -> a clean one
CHECKS: dict[str, tuple[RowCheck, Sequence[str]]] = {  # kind -> (check, CSV header needs)
    "charges": (charge_rows.check_row, charge_rows.REQUIRED),
    "registrations": (check_registration_row, ()),
}


@dataclass(frozen=True)
class Submitted:
    bulk_id: str
    valid: int
    invalid: list[dict[str, Any]]  # {"row": n, "ref": "...", "error": "..."}


def sort_rows(
    rows: Sequence[dict[str, Any]], check: RowCheck
) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
    """The valid rows (row number, clean row) and the refused ones (row number, ``ref``
    if it is fit to keep, the reason); rows are numbered from 1, as in the file."""
    valid: list[tuple[int, dict[str, Any]]] = []
    invalid: list[dict[str, Any]] = []
    for n, raw in enumerate(rows, start=1):
        try:
            valid.append((n, check(raw)))
        except ArspayError as exc:
            invalid.append({"row": n, "ref": safe_ref(raw), "error": exc.message})
    return valid, invalid


class BulkSubmissions:
    def __init__(self, db: Database, clock: Clock, queue: JobQueue) -> None:
        self.db = db
        self.clock = clock
        self.queue = queue
        self.completion = Completion(db, clock)

    async def submit(self, merchant_id: str, data: bytes, fmt: str, *, actor: str,
                     bulk_id: str | None = None, kind: str = "charges") -> Submitted:  # fmt: skip
        """Store a bulk job: ``kind`` ``charges`` (registered cards charged) or
        ``registrations`` (registration call requests, see ivr/bulk/registrations.py).
        A ``bulk_id`` already taken fails (IntegrityError)."""
        if kind not in KINDS:
            raise InvalidInput(f"bulk kind must be one of {', '.join(KINDS)}")
        check, required = CHECKS[kind]
        # an .xlsx of 100,000 rows takes seconds to read: not on the event loop
        file = await asyncio.to_thread(read_file, data, fmt, required)
        rows = file.rows
        valid, invalid = sort_rows(rows, check)
        bulk_id = bulk_id or new_id("bulk")
        async with self.db.transaction() as s:
            self.queue.add_in(
                s,
                PARENT,
                {
                    "bulk_id": bulk_id,
                    "merchant_id": merchant_id,
                    "kind": kind,
                    "rows": len(rows),
                    "valid": len(valid),
                    "invalid": invalid,
                    "file": file.source.as_dict(),  # the result file comes back the same
                },
                dedupe_key=bulk_id,
                max_attempts=1,
            )
            await self.queue.enqueue_many_in(
                s,
                ROW_KIND[kind],
                [
                    ({"bulk_id": bulk_id, "merchant_id": merchant_id, "row": n, **row},
                     row_key(bulk_id, n))
                    for n, row in valid
                ],
                max_attempts=20,
            )  # fmt: skip
            audit(s, self.clock, actor=actor, action="bulk.submit", object_type="bulk",
                  object_id=bulk_id, merchant_id=merchant_id,
                  details={"rows": len(rows), "invalid": len(invalid)})  # fmt: skip
        if not valid:  # nothing for a worker to do: the job is done now (and says so)
            await self.completion.finish({bulk_id})
        return Submitted(bulk_id, len(valid), invalid)
