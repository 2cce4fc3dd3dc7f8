"""The audit log: who did what to which object. Details never hold card data or digits."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NotRequired, Protocol, TypedDict, Unpack

from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import Clock
from ivr.store.tables import AuditLog


class AuditFields(TypedDict):
    """What an audit row says: who (``actor``) did what (``action``) to which object,
    for which merchant, with details (never card data or digits)."""

    actor: str
    action: str
    object_type: str
    object_id: str
    merchant_id: NotRequired[str | None]
    details: NotRequired[dict[str, Any] | None]


def audit(s: AsyncSession, clock: Clock, **entry: Unpack[AuditFields]) -> None:
    """Add an audit row to the caller's transaction (it commits with the change)."""
    s.add(AuditLog(**audit_values(clock.now(), **entry)))


class Owned(Protocol):
    """A row that belongs to one merchant: what :func:`audit_row` names."""

    id: str
    merchant_id: str


def audit_row(
    s: AsyncSession,
    clock: Clock,
    actor: str,
    action: str,
    row: Owned,
    details: dict[str, Any] | None = None,
) -> None:
    """:func:`audit` of ``action`` (``<object type>.<verb>``) on ``row``: the object
    type is the action's first part, the object and its merchant are the row's."""
    audit(s, clock, actor=actor, action=action, object_type=action.partition(".")[0],
          object_id=row.id, merchant_id=row.merchant_id, details=details)  # fmt: skip


def audit_values(at: datetime, **entry: Unpack[AuditFields]) -> dict[str, Any]:
    """An ``audit_log`` row as plain values, for batch writers that insert many rows
    with one statement (:func:`audit` adds one row as an ORM object)."""
    return {
        "at": at,
        "actor": entry["actor"],
        "merchant_id": entry.get("merchant_id"),
        "action": entry["action"],
        "object_type": entry["object_type"],
        "object_id": entry["object_id"],
        "details": entry.get("details") or {},
    }
