"""Webhook events and the outbox write.

:func:`emit_in` runs inside the caller's transaction: the event row and one pending
delivery per subscribed, enabled endpoint commit together with the change they
describe (or not at all). The dispatcher picks the deliveries up afterwards.

The body a receiver gets is the stored ``payload``:
``{"type": ..., "timestamp": ISO 8601, "data": {...}}``. Payloads never hold card
data: every string in them (keys and values) passes the text guard
(:mod:`ivr.domain.text`: no card-like digit run, however separated, no control or
invisible character) and no integer has 13 or more digits. Our own object ids are
exempt from the digit check (a ULID can hold 13 digits in a row).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import Clock
from ivr.domain.ids import is_object_id, new_id
from ivr.domain.states import DeliveryStatus, EndpointStatus
from ivr.domain.text import check_integer, check_text
from ivr.errors import InvalidInput
from ivr.store.core import table
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
        "card.verify_locked",
        "schedule.charge_failed",
        "schedule.cycle_declined",
        "bulk_job.completed",
        "customer.deleted",
    }
)


def check_event_types(types: list[str] | None) -> list[str]:
    """Validate a subscription list; empty or None means every type."""
    out = sorted(set(check_text(t, "event type") for t in types or []))  # echoed below
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
    _check_values(data)
    return text


def _check_values(value: object) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _check_values(key)
            _check_values(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_values(item)
    elif isinstance(value, str):
        if not is_object_id(value):  # (refusing ULIDs' digit runs failed 1 event in 1e5)
            check_text(value, "webhook data")
    elif type(value) is int:
        check_integer(value, "webhook data")


async def emit_in(
    s: AsyncSession, clock: Clock, merchant_id: str, type: str, data: dict[str, Any]
) -> WebhookEvent:
    """Write an event and its deliveries in the caller's transaction ``s``."""
    event = WebhookEvent(**event_values(clock.now(), merchant_id, type, data))
    s.add(event)
    await s.flush()  # the event before its deliveries (no ORM relationship orders them)
    await _deliveries_in(s, clock, [(event.id, merchant_id, type)])
    return event


async def emit_many_in(
    s: AsyncSession, clock: Clock, items: Sequence[tuple[str, str, dict[str, Any]]]
) -> list[str]:
    """:func:`emit_in` for many ``(merchant_id, type, data)`` at once (a batch of
    charges emits one event per charge): one multi-row INSERT of plain values instead
    of ORM objects, one endpoint query for the lot. Returns the event ids."""
    now = clock.now()
    rows = [event_values(now, merchant_id, type, data) for merchant_id, type, data in items]
    if not rows:
        return []
    await s.execute(insert(table(WebhookEvent)), rows)
    await _deliveries_in(s, clock, [(r["id"], r["merchant_id"], r["type"]) for r in rows])
    return [r["id"] for r in rows]


def event_values(
    now: datetime, merchant_id: str, type: str, data: dict[str, Any]
) -> dict[str, Any]:
    """The ``webhook_events`` row of an event, after checking its type and data."""
    if type not in EVENT_TYPES:
        raise InvalidInput(f"unknown webhook event type {type!r}")
    check_payload(data)
    return {
        "id": new_id("evt"),
        "merchant_id": merchant_id,
        "type": type,
        "payload": {"type": type, "timestamp": now.isoformat(), "data": data},
        "created_at": now,
    }


async def _deliveries_in(
    s: AsyncSession, clock: Clock, events: Sequence[tuple[str, str, str]]
) -> None:
    """One pending delivery per ``(event id, merchant id, type)`` and subscribed,
    enabled endpoint of that merchant."""
    endpoints = list(
        await s.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.merchant_id.in_({merchant_id for _, merchant_id, _ in events}),
                WebhookEndpoint.status == EndpointStatus.enabled.value,
            )
        )
    )
    rows = [
        delivery_values(event_id, endpoint.id, clock)
        for event_id, merchant_id, type in events
        for endpoint in endpoints
        if endpoint.merchant_id == merchant_id and wants(endpoint, type)
    ]
    if rows:
        await s.execute(insert(table(WebhookDelivery)), rows)


def new_delivery(event_id: str, endpoint_id: str, clock: Clock) -> WebhookDelivery:
    return WebhookDelivery(**delivery_values(event_id, endpoint_id, clock))


def delivery_values(event_id: str, endpoint_id: str, clock: Clock) -> dict[str, Any]:
    """The ``webhook_deliveries`` row of a new pending delivery."""
    now = clock.now()
    return {
        "id": new_id("whd"),
        "event_id": event_id,
        "endpoint_id": endpoint_id,
        "status": DeliveryStatus.pending.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
