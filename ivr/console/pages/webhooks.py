"""Webhooks: endpoints (create, rotate the signing secret, enable/disable, delete) and
the recent events with their deliveries (live), each with a redeliver button.

A signing secret is shown once: the answer to the create or rotate POST is the
endpoint's page holding it (status 200, not a redirect: the secret never travels in a
URL, a cookie or the database in the clear); any later GET of any page lacks it. A
disabled endpoint says why: disabled automatically after persistent delivery failure
(the dispatcher's audit row) or by whom. Every change goes through
:class:`~ivr.webhooks.service.WebhookService` with the console user as the actor, which
audits it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from ivr.console.access import Deps, Reader, Viewer, Writer
from ivr.console.pages.common import (
    acting_merchant,
    echoable,
    fetch_owned,
    merchant_names,
    owned,
    page_of,
    scope_of,
)
from ivr.console.pages.fields import CursorParam, IdField
from ivr.console.render import page
from ivr.domain.states import EndpointStatus
from ivr.errors import InvalidInput
from ivr.merchants.queries import last_actions
from ivr.store.tables import AuditLog, Merchant, WebhookDelivery, WebhookEndpoint, WebhookEvent
from ivr.webhooks import queries
from ivr.webhooks.events import EVENT_TYPES, subscribed_types

router = APIRouter()
EVENT_CHOICES = sorted(EVENT_TYPES)
DISABLE_ACTION = "webhook_endpoint.disable"


@dataclass(frozen=True, slots=True)
class EndpointView:
    row: WebhookEndpoint
    types: list[str]
    why: AuditLog | None  # the audit row of the last disable, when disabled


@dataclass(frozen=True, slots=True)
class EventView:
    row: WebhookEvent
    deliveries: list[WebhookDelivery]


@dataclass(frozen=True, slots=True)
class Draft:
    """What the create form held (shown again after a refusal)."""

    url: str = ""
    types: tuple[str, ...] = ()
    merchant_id: str = ""


async def _why(s: AsyncSession, endpoints: list[WebhookEndpoint]) -> dict[str, AuditLog]:
    """The last disable audit row of each disabled endpoint."""
    ids = [e.id for e in endpoints if e.status == EndpointStatus.disabled.value]
    return await last_actions(s, "webhook_endpoint", ids, DISABLE_ACTION)


async def _endpoints(s: AsyncSession, who: Viewer) -> list[EndpointView]:
    rows = await queries.endpoints(s, scope_of(who))
    why = await _why(s, rows)
    return [EndpointView(r, subscribed_types(r), why.get(r.id)) for r in rows]


async def _events(
    s: AsyncSession, who: Viewer, cursor: str | None
) -> tuple[list[EventView], str | None, dict[str, str]]:
    scope = scope_of(who)
    rows, nxt = await page_of(s, queries.events(scope), WebhookEvent.id, cursor)
    deliveries = await queries.deliveries_of(s, [r.id for r in rows])
    ids = {d.endpoint_id for ds in deliveries.values() for d in ds}
    urls = await queries.endpoint_urls(s, scope, ids)
    return [EventView(r, deliveries.get(r.id, [])) for r in rows], nxt, urls


async def _list_page(
    request: Request,
    deps: Deps,
    who: Viewer,
    *,
    cursor: str | None = None,
    draft: Draft | None = None,
    error: str | None = None,
    flash: str | None = None,
    status_code: int = 200,
) -> Response:
    async with deps.api.db.sessions() as s:
        endpoints = await _endpoints(s, who)
        events, nxt, urls = await _events(s, who, cursor)
        names = await merchant_names(s, who)
    return page(request, who, "webhooks.html", status_code=status_code, endpoints=endpoints,
                events=events, urls=urls, next_cursor=nxt, names=names, live=cursor is None,
                event_choices=EVENT_CHOICES, draft=draft or Draft(), error=error,
                flash=flash)  # fmt: skip


@router.get("/webhooks")
async def list_webhooks(
    request: Request,
    deps: Deps,
    who: Reader,
    cursor: CursorParam = None,
    queued: Annotated[int | None, Query(ge=0, le=10_000)] = None,
) -> Response:
    flash = who.t("wh.redelivered", n=queued) if queued is not None else None
    return await _list_page(request, deps, who, cursor=cursor, flash=flash)


@router.get("/webhooks/events")
async def event_rows(request: Request, deps: Deps, who: Reader) -> Response:
    """The events table's rows (polled by the list page)."""
    async with deps.api.db.sessions() as s:
        events, _, urls = await _events(s, who, None)
        names = await merchant_names(s, who)
    return page(request, who, "fragments/webhooks_events.html", events=events, urls=urls,
                names=names)  # fmt: skip


@router.post("/webhooks/endpoints")
async def create_endpoint(
    request: Request,
    deps: Deps,
    who: Writer,
    url: Annotated[str, Form(max_length=600)] = "",
    event_types: Annotated[list[str] | None, Form()] = None,
    merchant_id: IdField = "",
) -> Response:
    draft = Draft(url, tuple(event_types or ()), merchant_id)
    try:
        owner = acting_merchant(who, merchant_id)
        async with deps.api.db.sessions() as s:
            if await scope_of(who).get(s, Merchant, owner) is None:
                raise InvalidInput("choose a merchant")
        row, secret = await deps.api.webhooks.create_endpoint(
            owner, url, list(draft.types), actor=who.actor
        )
    except InvalidInput as exc:
        draft = Draft(echoable(url), draft.types, merchant_id)  # no card number sent back
        return await _list_page(request, deps, who, draft=draft, error=exc.message,
                                status_code=422)  # fmt: skip
    return await _detail_page(request, deps, who, row.id, secret=secret, rotated=False)


async def _detail_page(
    request: Request,
    deps: Deps,
    who: Viewer,
    endpoint_id: str,
    *,
    secret: str | None = None,
    rotated: bool = False,
) -> Response:
    async with deps.api.db.sessions() as s:
        ep = await owned(s, WebhookEndpoint, endpoint_id, who, "webhook endpoint")
        why = (await _why(s, [ep])).get(ep.id)
        recent = await queries.recent_deliveries(s, scope_of(who), ep.id, 25)
        names = await merchant_names(s, who)
    return page(request, who, "webhook.html", e=EndpointView(ep, subscribed_types(ep), why),
                deliveries=[(d, ev) for d, ev in recent], names=names, secret=secret,
                rotated=rotated)  # fmt: skip


@router.get("/webhooks/endpoints/{endpoint_id}")
async def show_endpoint(endpoint_id: str, request: Request, deps: Deps, who: Reader) -> Response:
    return await _detail_page(request, deps, who, endpoint_id)


async def _mine(deps: Deps, who: Viewer, endpoint_id: str) -> WebhookEndpoint:
    return await fetch_owned(deps.api.db, WebhookEndpoint, endpoint_id, who, "webhook endpoint")


@router.post("/webhooks/endpoints/{endpoint_id}/rotate")
async def rotate_secret(endpoint_id: str, request: Request, deps: Deps, who: Writer) -> Response:
    ep = await _mine(deps, who, endpoint_id)
    secret = await deps.api.webhooks.rotate_secret(ep.merchant_id, ep.id, actor=who.actor)
    return await _detail_page(request, deps, who, ep.id, secret=secret, rotated=True)


async def _set_enabled(deps: Deps, who: Viewer, endpoint_id: str, enabled: bool) -> Response:
    ep = await _mine(deps, who, endpoint_id)
    await deps.api.webhooks.update_endpoint(ep.merchant_id, ep.id, enabled=enabled,
                                            actor=who.actor)  # fmt: skip
    return RedirectResponse(f"/console/webhooks/endpoints/{ep.id}", status_code=303)


@router.post("/webhooks/endpoints/{endpoint_id}/enable")
async def enable_endpoint(endpoint_id: str, deps: Deps, who: Writer) -> Response:
    return await _set_enabled(deps, who, endpoint_id, True)


@router.post("/webhooks/endpoints/{endpoint_id}/disable")
async def disable_endpoint(endpoint_id: str, deps: Deps, who: Writer) -> Response:
    return await _set_enabled(deps, who, endpoint_id, False)


@router.post("/webhooks/endpoints/{endpoint_id}/delete")
async def delete_endpoint(endpoint_id: str, deps: Deps, who: Writer) -> Response:
    ep = await _mine(deps, who, endpoint_id)
    await deps.api.webhooks.delete_endpoint(ep.merchant_id, ep.id, actor=who.actor)
    return RedirectResponse("/console/webhooks", status_code=303)


@router.post("/webhooks/events/{event_id}/redeliver")
async def redeliver_event(
    event_id: str,
    deps: Deps,
    who: Writer,
    endpoint_id: IdField = "",
) -> Response:
    event = await fetch_owned(deps.api.db, WebhookEvent, event_id, who, "webhook event")
    n = await deps.api.webhooks.redeliver(
        event.merchant_id, event.id, endpoint_id=endpoint_id or None, actor=who.actor
    )
    return RedirectResponse(f"/console/webhooks?queued={n}", status_code=303)
