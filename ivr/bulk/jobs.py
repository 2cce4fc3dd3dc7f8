"""How a bulk job is stored: the jobs table, nothing of its own.

A bulk job is one ``bulk`` row (:data:`PARENT`; its dedupe key is the bulk id, its
payload the merchant, the kind, the counts and the rows refused at submission) and one
row job per valid row (:data:`CHARGE` or :data:`REGISTER`, dedupe key
``bulk:<id>:<row>``, see :func:`row_key`), all inserted in one transaction with the
submission. The row jobs' payloads are the rows' memory: what was created for them
(the intent id, the request id) and, at the end, their ``result``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from ivr.errors import NotFound
from ivr.store.db import Database
from ivr.store.scope import Scope
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


def parents(scope: Scope) -> Select[Job]:
    """Every bulk job's parent row in ``scope`` (a list's query: the caller orders and
    pages it)."""
    return scope.where(select(Job).where(Job.kind == PARENT), Job)


async def find_parent(db: Database, scope: Scope, bulk_id: str) -> Job:
    """The bulk job's parent row; NotFound if there is none in ``scope`` (another
    merchant's is not confirmed to exist)."""
    async with db.sessions() as s:
        parent = await s.scalar(parents(scope).where(Job.dedupe_key == bulk_id))
    if parent is None:
        raise NotFound(f"bulk job {bulk_id} not found")
    return parent


async def id_taken(db: Database, bulk_id: str) -> bool:
    """Whether any job, of any merchant, already uses ``bulk_id`` as its key (a bulk id
    chosen by a form must be new across merchants)."""
    q: Any = Scope.everyone().where(select(Job.id).where(Job.dedupe_key == bulk_id), Job)
    async with db.sessions() as s:
        return await s.scalar(q) is not None
