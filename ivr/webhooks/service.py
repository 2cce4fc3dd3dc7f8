"""Webhook endpoints, events and deliveries as a merchant sees them (API and console).

Every method is scoped to one merchant: another merchant's endpoint or event is
:class:`~ivr.errors.NotFound`. Secrets are returned once, by :meth:`create_endpoint`
and :meth:`rotate_secret`; ``WebhookEndpoint.secret`` holds the packed signing keys
(:mod:`ivr.webhooks.keyring`) and must never be shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.audit import audit_row
from ivr.clock import Clock
from ivr.domain.ids import new_id
from ivr.domain.states import DELIVERY, ENDPOINT, DeliveryStatus, EndpointStatus
from ivr.domain.text import check_text
from ivr.errors import Conflict, InvalidInput, NotFound
from ivr.store.db import Database
from ivr.store.scope import Scope
from ivr.store.tables import WebhookDelivery, WebhookEndpoint, WebhookEvent
from ivr.webhooks import keyring
from ivr.webhooks.events import check_event_types, new_delivery, wants
from ivr.webhooks.health import ENABLE_ACTION
from ivr.webhooks.signing import new_secret

D = DeliveryStatus
MAX_PAGE = 100


def check_url(url: str) -> str:
    url = check_text(url, "webhook url").strip()  # stored, shown and fetched
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. "http://[" (a broken IPv6 literal)
        host = None
    if host is None:
        raise InvalidInput("webhook url must be an http(s) URL of at most 500 characters")
    if parts.scheme not in ("https", "http") or not parts.hostname or len(url) > 500:
        raise InvalidInput("webhook url must be an http(s) URL of at most 500 characters")
    return url


@dataclass(eq=False)
class WebhookService:
    db: Database
    clock: Clock

    # ------------------------------------------------------------------ endpoints

    async def create_endpoint(
        self,
        merchant_id: str,
        url: str,
        event_types: list[str] | None,
        *,
        actor: str,
        endpoint_id: str | None = None,
    ) -> tuple[WebhookEndpoint, str]:
        secret = new_secret()
        endpoint = WebhookEndpoint(
            id=endpoint_id or new_id("whe"),
            merchant_id=merchant_id,
            url=check_url(url),
            secret=secret,
            status=EndpointStatus.enabled.value,
            event_types={"types": check_event_types(event_types)},
            created_at=self.clock.now(),
            disabled_at=None,
        )
        async with self.db.transaction() as s:
            s.add(endpoint)
            audit_row(s, self.clock, actor, "webhook_endpoint.create", endpoint,
                      {"url": endpoint.url})  # fmt: skip
        return endpoint, secret

    async def list_endpoints(self, merchant_id: str) -> list[WebhookEndpoint]:
        async with self.db.sessions() as s:
            q = Scope.of(merchant_id).where(select(WebhookEndpoint), WebhookEndpoint)
            return list(await s.scalars(q.order_by(WebhookEndpoint.id)))

    async def get_endpoint(self, merchant_id: str, endpoint_id: str) -> WebhookEndpoint:
        async with self.db.sessions() as s:
            return await self._endpoint(s, merchant_id, endpoint_id)

    async def update_endpoint(
        self,
        merchant_id: str,
        endpoint_id: str,
        *,
        url: str | None = None,
        event_types: list[str] | None = None,
        enabled: bool | None = None,
        actor: str,
    ) -> WebhookEndpoint:
        """Change an endpoint. ``enabled=True`` on a disabled endpoint (for instance one
        disabled after persistent failure) schedules its waiting and failed deliveries
        again, each with a fresh retry window."""
        async with self.db.transaction() as s:
            ep = await self._endpoint(s, merchant_id, endpoint_id, lock=True)
            changes: dict[str, Any] = {}
            if url is not None:
                ep.url = changes["url"] = check_url(url)
            if event_types is not None:
                types = check_event_types(event_types)
                ep.event_types = {"types": types}
                changes["event_types"] = types
            if changes:
                audit_row(s, self.clock, actor, "webhook_endpoint.update", ep, changes)
            if enabled is not None and enabled != (ep.status == EndpointStatus.enabled.value):
                if enabled:
                    ep.status = ENDPOINT.check(ep.status, EndpointStatus.enabled).value
                    ep.disabled_at = None
                    n = await self._reschedule(s, ep.id)
                    audit_row(s, self.clock, actor, ENABLE_ACTION, ep, {"rescheduled": n})
                else:
                    ep.status = ENDPOINT.check(ep.status, EndpointStatus.disabled).value
                    ep.disabled_at = self.clock.now()
                    audit_row(s, self.clock, actor, "webhook_endpoint.disable", ep, {})
        return ep

    async def rotate_secret(self, merchant_id: str, endpoint_id: str, *, actor: str) -> str:
        """A new secret; for 24 h messages are signed with the new and the old one."""
        secret = new_secret()
        async with self.db.transaction() as s:
            ep = await self._endpoint(s, merchant_id, endpoint_id, lock=True)
            ep.secret = keyring.rotated(ep.secret, secret, self.clock.now())
            audit_row(s, self.clock, actor, "webhook_endpoint.rotate_secret", ep, {})
        return secret

    async def delete_endpoint(self, merchant_id: str, endpoint_id: str, *, actor: str) -> None:
        """Delete an endpoint and its delivery records (events stay)."""
        async with self.db.transaction() as s:
            ep = await self._endpoint(s, merchant_id, endpoint_id, lock=True)
            await s.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == ep.id))
            await s.delete(ep)
            audit_row(s, self.clock, actor, "webhook_endpoint.delete", ep, {"url": ep.url})

    # ------------------------------------------------------------------ events

    async def list_events(
        self, merchant_id: str, *, after: str | None = None, limit: int = 50
    ) -> list[WebhookEvent]:
        """Events oldest first; ``after`` is the last event id of the previous page."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        query = Scope.of(merchant_id).where(select(WebhookEvent), WebhookEvent)
        if after is not None:
            query = query.where(WebhookEvent.id > after)
        async with self.db.sessions() as s:
            rows = await s.scalars(query.order_by(WebhookEvent.id).limit(limit))
            return list(rows)

    async def get_event(self, merchant_id: str, event_id: str) -> WebhookEvent:
        async with self.db.sessions() as s:
            return await self._event(s, merchant_id, event_id)

    async def deliveries(self, merchant_id: str, event_id: str) -> list[WebhookDelivery]:
        async with self.db.sessions() as s:
            await self._event(s, merchant_id, event_id)
            rows = await s.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.event_id == event_id)
                .order_by(WebhookDelivery.id)
            )
            return list(rows)

    async def redeliver(
        self, merchant_id: str, event_id: str, *, endpoint_id: str | None = None, actor: str
    ) -> int:
        """Queue the event again, now, for one endpoint or every enabled endpoint that
        subscribes to its type. Same ``webhook-id``: receivers dedupe. Returns how
        many deliveries were queued."""
        async with self.db.transaction() as s:
            event = await self._event(s, merchant_id, event_id)
            if endpoint_id is not None:
                ep = await self._endpoint(s, merchant_id, endpoint_id)
                if ep.status != EndpointStatus.enabled.value:
                    raise Conflict(f"webhook endpoint {ep.id} is disabled: enable it first")
                targets = [ep]
            else:
                rows = await s.scalars(
                    select(WebhookEndpoint).where(
                        WebhookEndpoint.merchant_id == merchant_id,
                        WebhookEndpoint.status == EndpointStatus.enabled.value,
                    )
                )
                targets = [ep for ep in rows if wants(ep, event.type)]
            queued = 0
            for ep in targets:
                row = await s.scalar(
                    select(WebhookDelivery)
                    .where(
                        WebhookDelivery.event_id == event.id,
                        WebhookDelivery.endpoint_id == ep.id,
                    )
                    .with_for_update()
                )
                if row is None:
                    s.add(new_delivery(event.id, ep.id, self.clock))
                    queued += 1
                elif self._requeue(row):
                    queued += 1
            audit_row(s, self.clock, actor, "webhook_event.redeliver", event,
                      {"endpoint_id": endpoint_id, "queued": queued})  # fmt: skip
        return queued

    # ------------------------------------------------------------------ helpers

    def _requeue(self, row: WebhookDelivery) -> bool:
        """Back to pending, due now, with a fresh retry window. A delivery being sent
        right now is left alone."""
        if row.status == D.sending.value:
            return False
        if row.status == D.sent.value:  # a replay of a delivered event
            row.status = DELIVERY.check(row.status, D.failed).value
        if row.status == D.failed.value:
            row.status = DELIVERY.check(row.status, D.pending).value
        row.attempts = 0
        row.next_attempt_at = self.clock.now()
        return True

    async def _reschedule(self, s: AsyncSession, endpoint_id: str) -> int:
        rows = await s.scalars(
            select(WebhookDelivery)
            .where(
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.status.in_([D.pending.value, D.retrying.value, D.failed.value]),
            )
            .with_for_update()
        )
        return sum(1 for row in rows if self._requeue(row))

    async def _endpoint(
        self, s: AsyncSession, merchant_id: str, endpoint_id: str, *, lock: bool = False
    ) -> WebhookEndpoint:
        ep = await Scope.of(merchant_id).get(s, WebhookEndpoint, endpoint_id, lock=lock)
        if ep is None:
            raise NotFound(f"webhook endpoint {endpoint_id} not found")
        return ep

    async def _event(self, s: AsyncSession, merchant_id: str, event_id: str) -> WebhookEvent:
        event = await Scope.of(merchant_id).get(s, WebhookEvent, event_id)
        if event is None:
            raise NotFound(f"webhook event {event_id} not found")
        return event
