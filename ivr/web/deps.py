"""What the API's handlers and the console's pages share: a view of the runtime's
services (built once by :mod:`ivr.runtime`; nothing here builds one)."""

from __future__ import annotations

from dataclasses import dataclass

from ivr.billing.schedules import ScheduleService
from ivr.bulk.wiring import Bulk
from ivr.cards.service import CardService
from ivr.cards.verification import CardVerification
from ivr.clock import Clock
from ivr.consent.ledger import ConsentLedger
from ivr.merchants.service import CustomerService, MerchantService
from ivr.payments.charger import Charger
from ivr.payments.service import PaymentService
from ivr.pg_accounts.store import PgAccounts
from ivr.requests.service import CallRequestService
from ivr.store.db import Database
from ivr.webhooks.service import WebhookService


@dataclass(frozen=True)
class WebDeps:
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
    pg_accounts: PgAccounts
