"""When an endpoint whose deliveries keep failing is disabled.

An endpoint is *failing since* the creation of its oldest delivery that has failed at
least once and was created after its last success (or after it was last enabled, or
created); if no such delivery exists, since that moment. After a failed attempt the
dispatcher disables the endpoint once it has been failing for ``disable_after_hours``
with no 2xx in between. Its deliveries then wait; enabling it (console/API) schedules
them again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.domain.states import DeliveryStatus
from ivr.store.tables import AuditLog, WebhookDelivery, WebhookEndpoint

ENABLE_ACTION = "webhook_endpoint.enable"
_FAILING = (DeliveryStatus.retrying.value, DeliveryStatus.failed.value)


async def failing_since(s: AsyncSession, endpoint: WebhookEndpoint) -> datetime | None:
    """When the current run of failures began, or None if the last attempt succeeded."""
    last_ok = await s.scalar(
        select(func.max(WebhookDelivery.delivered_at)).where(
            WebhookDelivery.endpoint_id == endpoint.id
        )
    )
    last_enable = await s.scalar(
        select(func.max(AuditLog.at)).where(
            AuditLog.object_type == "webhook_endpoint",
            AuditLog.object_id == endpoint.id,
            AuditLog.action == ENABLE_ACTION,
        )
    )
    base = max(t for t in (endpoint.created_at, last_ok, last_enable) if t is not None)
    first_fail = await s.scalar(
        select(func.min(WebhookDelivery.created_at)).where(
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.status.in_(_FAILING),
            WebhookDelivery.attempts > 0,
            WebhookDelivery.created_at >= base,
        )
    )
    return first_fail if first_fail is not None else base


async def should_disable(
    s: AsyncSession, endpoint: WebhookEndpoint, now: datetime, disable_after_hours: float
) -> bool:
    since = await failing_since(s, endpoint)
    return since is not None and now - since >= timedelta(hours=disable_after_hours)
