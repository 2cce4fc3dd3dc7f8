"""Request and response models of the webhook routes (merchant endpoints, deliveries,
events) and of the PG's webhooks; the rest of the API's are in ``ivr.api.schemas``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from ivr.api.schemas import EventType, Text, _In, _Out


class WebhookEndpointIn(_In):
    url: Text = Field(min_length=1, max_length=500)
    event_types: list[EventType] = Field(default_factory=list, description="empty = every type")


class WebhookEndpointPatch(_In):
    url: Text | None = Field(None, min_length=1, max_length=500)
    event_types: list[EventType] | None = None
    enabled: bool | None = Field(
        None, description="true re-enables an endpoint disabled after persistent failure"
    )


class WebhookEndpointOut(_Out):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    status: str
    event_types: list[EventType]
    created_at: datetime
    disabled_at: datetime | None


_WITHHELD = Field(
    False,
    description="true on an idempotent replay (Idempotent-Replayed: true): the secret is "
    "shown in the first answer only and never kept for replays; if that answer was lost, "
    "rotate the secret",
)


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str | None = Field(
        description="whsec_…; shown only here and on rotation (null on a replay)"
    )
    secret_withheld: bool = _WITHHELD


class SecretOut(_Out):
    endpoint_id: str
    secret: str | None = Field(
        description="the new whsec_…; the old one stays valid for 24 h (null on a replay)"
    )
    secret_withheld: bool = _WITHHELD


class DeliveryOut(_Out):
    id: str
    endpoint_id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None


class EventOut(_Out):
    id: str = Field(description="the webhook-id header; stable across redeliveries")
    object: Literal["event"] = "event"
    type: str
    created_at: datetime
    payload: dict[str, Any]


class EventDetailOut(EventOut):
    deliveries: list[DeliveryOut]


class RedeliverIn(_In):
    endpoint_id: Text | None = Field(None, min_length=1, max_length=40)


class RedeliverOut(_Out):
    event_id: str
    queued: int


class PgWebhookOut(_Out):
    """What the engine did with a verified PG notification."""

    result: Literal["settled", "nothing_open", "unknown_order", "ignored", "duplicate"] = Field(
        description="settled: the order's open charge or refund was looked up at the PG "
        "now; nothing_open: it had ended already; unknown_order: not an order of this "
        "engine; ignored: not about a payment; duplicate: this webhook-id was handled"
    )
