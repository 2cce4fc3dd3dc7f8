"""The consent-records read model (the console's list and record pages), through a
:class:`~ivr.store.scope.Scope`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.store.scope import Scope
from ivr.store.tables import ConsentRecord


async def consent_records(
    s: AsyncSession,
    scope: Scope,
    *,
    call_request_id: str | None = None,
    kind: str | None = None,
    before: int | None = None,
    limit: int,
) -> list[ConsentRecord]:
    """Up to ``limit`` records in ``scope``, newest first (by chain position), older
    than position ``before``."""
    q = scope.where(select(ConsentRecord), ConsentRecord)
    if call_request_id:
        q = q.where(ConsentRecord.call_request_id == call_request_id)
    if kind:
        q = q.where(ConsentRecord.kind == kind)
    if before is not None:
        q = q.where(ConsentRecord.seq < before)
    return list(await s.scalars(q.order_by(ConsentRecord.seq.desc()).limit(limit)))


async def record_at(s: AsyncSession, scope: Scope, seq: int) -> str | None:
    """The id of the record at chain position ``seq`` in ``scope``."""
    q = scope.where(select(ConsentRecord.id).where(ConsentRecord.seq == seq), ConsentRecord)
    found: str | None = await s.scalar(q)
    return found
