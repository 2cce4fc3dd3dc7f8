"""What the API handlers use: the shared web view of the runtime's services, plus the
API's settings. Filled from a :class:`~ivr.runtime.Runtime` (never global, never built
here)."""

from __future__ import annotations

from dataclasses import dataclass

from ivr.gateways.portone_v2.webhooks import PortOneWebhooks
from ivr.observability.telemetry import Telemetry
from ivr.pg_accounts.migration import CardMigrator
from ivr.runtime import Runtime
from ivr.settings import ApiSettings, GatewaySettings
from ivr.web.deps import WebDeps


@dataclass(frozen=True)
class ApiDeps(WebDeps):
    settings: ApiSettings
    portone_webhooks: PortOneWebhooks | None = None  # set when gateway.webhook_secret is
    card_migrations: CardMigrator | None = None  # starts batches; the engine moves cards
    telemetry: Telemetry | None = None  # /ready and /metrics (ivr/api/probes.py)

    @classmethod
    def from_runtime(cls, rt: Runtime) -> ApiDeps:
        sv = rt.services
        return cls(
            settings=sv.settings.api,
            clock=sv.clock,
            db=sv.db,
            merchants=sv.merchants,
            customers=sv.customers,
            requests=sv.requests,
            cards=rt.cards,
            payments=rt.payments,
            charger=rt.charger,
            schedules=sv.schedules,
            bulk=rt.bulk,
            webhooks=sv.endpoints,
            consent=sv.consent,
            verification=sv.verification,
            pg_accounts=sv.pg_accounts,
            portone_webhooks=portone_webhooks(sv.settings.gateway),
            card_migrations=rt.migrations,
            telemetry=rt.telemetry,
        )


def portone_webhooks(gw: GatewaySettings) -> PortOneWebhooks | None:
    """The verifier of PortOne V2 webhooks, when a webhook secret is configured."""
    secret = gw.webhook_secret.get_secret_value()
    return PortOneWebhooks(secret) if secret else None
