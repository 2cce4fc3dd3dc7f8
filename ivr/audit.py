"""The audit log: who did what to which object. Details never hold card data or digits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import Clock
from ivr.store.tables import AuditLog


def audit(
    s: AsyncSession,
    clock: Clock,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    merchant_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add an audit row to the caller's transaction (it commits with the change)."""
    s.add(
        AuditLog(
            **audit_values(
                clock.now(),
                actor=actor,
                action=action,
                object_type=object_type,
                object_id=object_id,
                merchant_id=merchant_id,
                details=details,
            )
        )
    )


def audit_values(
    at: datetime,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    merchant_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An ``audit_log`` row as plain values, for batch writers that insert many rows
    with one statement (:func:`audit` adds one row as an ORM object)."""
    return {
        "at": at,
        "actor": actor,
        "merchant_id": merchant_id,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "details": details or {},
    }
