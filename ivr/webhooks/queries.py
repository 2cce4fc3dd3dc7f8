"""The webhooks read model (the console's webhooks pages, the API's event list):
endpoints, events with their deliveries, through a :class:`~ivr.store.scope.Scope`.
Deliveries carry no merchant: they are read by the id of an event or endpoint read
through the scope first."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.store.scope import Scope
from ivr.store.tables import WebhookDelivery, WebhookEndpoint, WebhookEvent


async def endpoints(s: AsyncSession, scope: Scope) -> list[WebhookEndpoint]:
    """The endpoints in ``scope``, newest first."""
    q = scope.where(select(WebhookEndpoint), WebhookEndpoint)
    return list(await s.scalars(q.order_by(WebhookEndpoint.id.desc())))


def events(scope: Scope, *, type: str | None = None) -> Select[WebhookEvent]:
    """The events in ``scope`` (to page), optionally of one type."""
    return scope.select(WebhookEvent, type=type)


async def deliveries_of(s: AsyncSession, event_ids: list[str]) -> dict[str, list[WebhookDelivery]]:
    """The deliveries of each event, in id order."""
    found: dict[str, list[WebhookDelivery]] = {}
    if not event_ids:
        return found
    for d in await s.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.event_id.in_(event_ids))
        .order_by(WebhookDelivery.id)
    ):
        found.setdefault(d.event_id, []).append(d)
    return found


async def endpoint_urls(s: AsyncSession, scope: Scope, ids: set[str]) -> dict[str, str]:
    """Endpoint id → URL, for the endpoints in ``scope`` among ``ids``."""
    if not ids:
        return {}
    q = scope.where(
        select(WebhookEndpoint.id, WebhookEndpoint.url).where(WebhookEndpoint.id.in_(ids)),
        WebhookEndpoint,
    )
    return {eid: url for eid, url in (await s.execute(q)).all()}


async def recent_deliveries(
    s: AsyncSession, scope: Scope, endpoint_id: str, limit: int
) -> list[tuple[WebhookDelivery, WebhookEvent]]:
    """The newest ``limit`` deliveries to an endpoint, each with its event."""
    q = scope.where(
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id),
        WebhookEvent,
    )
    rows = await s.execute(q.order_by(WebhookDelivery.id.desc()).limit(limit))
    return [(d, ev) for d, ev in rows.all()]
