"""How a bulk job is stored: the jobs table, nothing of its own.

A bulk job is one ``bulk`` row (:data:`PARENT`; its dedupe key is the bulk id, its
payload the merchant, the kind, the counts and the rows refused at submission) and one
row job per valid row (:data:`CHARGE` or :data:`REGISTER`, dedupe key
``bulk:<id>:<row>``, see :func:`row_key`), all inserted in one transaction with the
submission. The row jobs' payloads are the rows' memory: what was created for them
(the intent id, the request id) and, at the end, their ``result``.
"""

from __future__ import annotations

from sqlalchemy import select

from ivr.errors import NotFound
from ivr.store.db import Database
from ivr.store.tables import Job

PARENT = "bulk"
CHARGE = "bulk.charge"  # a registered card charged
REGISTER = "bulk.register"  # a registration call request
ROWS = (CHARGE, REGISTER)  # every row job kind
KINDS = ("charges", "registrations")  # what a merchant submits
ROW_KIND = {"charges": CHARGE, "registrations": REGISTER}


def row_key(bulk_id: str, row: int) -> str:
    """The dedupe key of a bulk job's row ``row`` (1-based, as in the file)."""
    return f"bulk:{bulk_id}:{row}"


def rows_like(bulk_id: str) -> str:
    """The LIKE pattern of every row job of a bulk job."""
    return f"bulk:{bulk_id}:%"


async def find_parent(db: Database, merchant_id: str | None, bulk_id: str) -> Job:
    """The bulk job's parent row; NotFound if there is none or (``merchant_id`` given)
    it is another merchant's."""
    async with db.sessions() as s:
        parent = await s.scalar(select(Job).where(Job.kind == PARENT, Job.dedupe_key == bulk_id))
    if parent is None or (merchant_id is not None and parent.payload["merchant_id"] != merchant_id):
        raise NotFound(f"bulk job {bulk_id} not found")
    return parent
