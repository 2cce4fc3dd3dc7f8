"""What the API handlers use: the engine's services, passed in (never global)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ivr.billing.schedules import ScheduleService
from ivr.bulk.wiring import Bulk
from ivr.cards.service import CardService
from ivr.cards.verification import CardVerification
from ivr.clock import Clock
from ivr.consent.ledger import ConsentLedger
from ivr.merchants.service import CustomerService, MerchantService
from ivr.payments.charger import Charger
from ivr.payments.service import PaymentService
from ivr.requests.service import CallRequestService
from ivr.settings import ApiSettings
from ivr.store.db import Database
from ivr.webhooks.service import WebhookService

if TYPE_CHECKING:
    from ivr.runtime import Runtime


@dataclass(frozen=True)
class ApiDeps:
    settings: ApiSettings
    clock: Clock
    db: Database
    merchants: MerchantService
    customers: CustomerService
    requests: CallRequestService
    cards: CardService
    payments: PaymentService
    charger: Charger
    schedules: ScheduleService
    bulk: Bulk
    webhooks: WebhookService
    consent: ConsentLedger
    verification: CardVerification

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
            cards=rt.deps.cards,
            payments=rt.deps.payments,
            charger=rt.charger,
            schedules=ScheduleService(sv.db, sv.clock),
            bulk=rt.bulk,
            webhooks=WebhookService(sv.db, sv.clock),
            consent=sv.consent,
            verification=rt.deps.verification,
        )
