"""Webhook events and the outbox write.

:func:`emit_in` runs inside the caller's transaction: the event row and one pending
delivery per subscribed, enabled endpoint commit together with the change they
describe (or not at all). The dispatcher picks the deliveries up afterwards.

The body a receiver gets is the stored ``payload``:
``{"type": ..., "timestamp": ISO 8601, "data": {...}}``. Payloads never hold card
data: any run of 13 or more digits (spaces or dashes allowed between them) is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import Clock
from ivr.domain.ids import new_id
from ivr.domain.states import DeliveryStatus, EndpointStatus
from ivr.errors import InvalidInput
from ivr.store.tables import WebhookDelivery, WebhookEndpoint, WebhookEvent

EVENT_TYPES: frozenset[str] = frozenset(
    {
        "registration.completed",
        "registration.declined",
        "registration.failed",
        "registration.expired",
        "payment.succeeded",
        "payment.failed",
        "payment.refunded",
        "call_request.expired",
        "schedule.charge_failed",
        "bulk_job.completed",
    }
)

# A card number: 13+ digits, maybe grouped by spaces or hyphens, standing alone. Not a
# digit run inside an id (a ULID's random part can hold 13 digits in a row: refusing
# those made one event in ~100,000 fail its transaction).
CARD_LIKE = re.compile(r"(?<![0-9A-Za-z])\d(?:[ -]?\d){12,}(?![0-9A-Za-z])")


def check_event_types(types: list[str] | None) -> list[str]:
    """Validate a subscription list; empty or None means every type."""
    out = sorted(set(types or []))
    unknown = [t for t in out if t not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(f"unknown webhook event type(s): {', '.join(unknown)}")
    return out


def subscribed_types(endpoint: WebhookEndpoint) -> list[str]:
    """The endpoint's event types; an empty list means all."""
    types = (endpoint.event_types or {}).get("types") or []
    return [str(t) for t in types]


def wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    types = subscribed_types(endpoint)
    return not types or event_type in types


def check_payload(data: dict[str, Any]) -> str:
    """The data as JSON, after refusing anything that looks like a card number."""
    try:
        text = json.dumps(data, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        raise InvalidInput("webhook data must be JSON-serialisable") from None
    if CARD_LIKE.search(text):
        raise InvalidInput("webhook data holds a 13+ digit run (card data is never sent)")
    return text


async def emit_in(
    s: AsyncSession, clock: Clock, merchant_id: str, type: str, data: dict[str, Any]
) -> WebhookEvent:
    """Write an event and its deliveries in the caller's transaction ``s``."""
    [event] = await emit_many_in(s, clock, [(merchant_id, type, data)])
    return event


async def emit_many_in(
    s: AsyncSession, clock: Clock, items: Sequence[tuple[str, str, dict[str, Any]]]
) -> list[WebhookEvent]:
    """:func:`emit_in` for many ``(merchant_id, type, data)`` at once: one flush and one
    endpoint query for the lot (a batch of charges emits one event per charge)."""
    now = clock.now()
    events = []
    for merchant_id, type, data in items:
        if type not in EVENT_TYPES:
            raise InvalidInput(f"unknown webhook event type {type!r}")
        check_payload(data)
        events.append(
            WebhookEvent(
                id=new_id("evt"),
                merchant_id=merchant_id,
                type=type,
                payload={"type": type, "timestamp": now.isoformat(), "data": data},
                created_at=now,
            )
        )
    if not events:
        return []
    s.add_all(events)
    await s.flush()  # events before their deliveries (no ORM relationship orders them)
    endpoints = list(
        await s.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.merchant_id.in_({e.merchant_id for e in events}),
                WebhookEndpoint.status == EndpointStatus.enabled.value,
            )
        )
    )
    for event in events:
        for endpoint in endpoints:
            if endpoint.merchant_id == event.merchant_id and wants(endpoint, event.type):
                s.add(new_delivery(event.id, endpoint.id, clock))
    return events


def new_delivery(event_id: str, endpoint_id: str, clock: Clock) -> WebhookDelivery:
    now = clock.now()
    return WebhookDelivery(
        id=new_id("whd"),
        event_id=event_id,
        endpoint_id=endpoint_id,
        status=DeliveryStatus.pending.value,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
