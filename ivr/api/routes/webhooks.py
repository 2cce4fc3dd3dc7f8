"""Webhook endpoints (secret shown once, rotation with a 24 h overlap, re-enable after
persistent failure), events, and redelivery."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from ivr.api import schemas as S
from ivr.api import webhook_schemas as W
from ivr.api.route import actor
from ivr.api.routes.common import WRITE_ERRORS, Deps, Me, Paging, retried
from ivr.api.routes.common import router as make_router
from ivr.api.routes.listing import listed
from ivr.store.scope import Scope
from ivr.store.tables import WebhookEndpoint, WebhookEvent
from ivr.web import views
from ivr.webhooks.queries import events

router = make_router("webhooks")


@router.post(
    "/webhook-endpoints",
    status_code=201,
    responses=WRITE_ERRORS,
    summary="Add an endpoint; its signing secret is shown only in this answer",
)
async def create_endpoint(
    body: W.WebhookEndpointIn, request: Request, d: Deps, me: Me
) -> W.WebhookEndpointCreated:
    rid, done = await retried(request, d, me, WebhookEndpoint, "whe")
    if done is not None:  # a retry whose first answer was lost: the secret is the newest
        secret = done.secret.split(" ")[0]
        return W.WebhookEndpointCreated(**views.endpoint(done).model_dump(), secret=secret)
    row, secret = await d.webhooks.create_endpoint(
        me.merchant_id, body.url, body.event_types, actor=actor(me), endpoint_id=rid
    )
    return W.WebhookEndpointCreated(**views.endpoint(row).model_dump(), secret=secret)


@router.get("/webhook-endpoints")
async def list_endpoints(d: Deps, me: Me) -> list[W.WebhookEndpointOut]:
    return [views.endpoint(r) for r in await d.webhooks.list_endpoints(me.merchant_id)]


@router.get("/webhook-endpoints/{endpoint_id}")
async def get_endpoint(endpoint_id: str, d: Deps, me: Me) -> W.WebhookEndpointOut:
    return views.endpoint(await d.webhooks.get_endpoint(me.merchant_id, endpoint_id))


@router.patch(
    "/webhook-endpoints/{endpoint_id}",
    responses=WRITE_ERRORS,
    summary="Change the URL or event types; enabled=true re-enables a disabled endpoint",
)
async def update_endpoint(
    endpoint_id: str, body: W.WebhookEndpointPatch, d: Deps, me: Me
) -> W.WebhookEndpointOut:
    row = await d.webhooks.update_endpoint(
        me.merchant_id,
        endpoint_id,
        url=body.url,
        event_types=body.event_types,
        enabled=body.enabled,
        actor=actor(me),
    )
    return views.endpoint(row)


@router.delete(
    "/webhook-endpoints/{endpoint_id}",
    status_code=204,
    responses=WRITE_ERRORS,
    response_class=Response,
)
async def delete_endpoint(endpoint_id: str, d: Deps, me: Me) -> Response:
    await d.webhooks.delete_endpoint(me.merchant_id, endpoint_id, actor=actor(me))
    return Response(status_code=204)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret",
    responses=WRITE_ERRORS,
    summary="A new signing secret; messages carry both signatures for 24 h",
)
async def rotate_secret(endpoint_id: str, d: Deps, me: Me) -> W.SecretOut:
    secret = await d.webhooks.rotate_secret(me.merchant_id, endpoint_id, actor=actor(me))
    return W.SecretOut(endpoint_id=endpoint_id, secret=secret)


@router.get("/events")
async def list_events(d: Deps, me: Me, page: Paging, type: str | None = None) -> S.Page[W.EventOut]:
    q = events(Scope.of(me.merchant_id), type=type)
    return await listed(d, page, S.Page[W.EventOut], q, WebhookEvent.id, views.event)


@router.get("/events/{event_id}")
async def get_event(event_id: str, d: Deps, me: Me) -> W.EventDetailOut:
    row = await d.webhooks.get_event(me.merchant_id, event_id)
    deliveries = await d.webhooks.deliveries(me.merchant_id, event_id)
    return W.EventDetailOut(
        **views.event(row).model_dump(), deliveries=[views.delivery(x) for x in deliveries]
    )


@router.post(
    "/events/{event_id}/redeliver",
    status_code=202,
    responses=WRITE_ERRORS,
    summary="Queue the event again now (same webhook-id: receivers dedupe)",
)
async def redeliver_event(event_id: str, body: W.RedeliverIn, d: Deps, me: Me) -> W.RedeliverOut:
    n = await d.webhooks.redeliver(
        me.merchant_id, event_id, endpoint_id=body.endpoint_id, actor=actor(me)
    )
    return W.RedeliverOut(event_id=event_id, queued=n)
