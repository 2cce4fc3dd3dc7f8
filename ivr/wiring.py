"""The core services: everything backed by the database alone (no PG, vault or
telephony), as the lower layers take them.

Built once, by :func:`ivr.runtime.build` (the composition root); the engine, the call
flows, the web layer and the CLI commands that need no vault receive this container,
never build a service themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.billing.schedules import ScheduleService
from ivr.cards.verification import CardVerification
from ivr.clock import Clock
from ivr.consent.ledger import ConsentLedger
from ivr.console.mfa import SecondFactor
from ivr.console.sessions import SessionStore
from ivr.console.users import ConsoleUsers
from ivr.dids.pool import DidPool
from ivr.merchants.service import CustomerService, MerchantService
from ivr.notify.notices.router import NoticeRouter
from ivr.pg_accounts.store import PgAccounts
from ivr.requests.service import CallRequestService, DevOutbox
from ivr.settings import Settings
from ivr.store.db import Database
from ivr.webhooks.service import WebhookService


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    db: Database
    dids: DidPool
    merchants: MerchantService
    customers: CustomerService
    requests: CallRequestService
    outbox: DevOutbox
    notices: NoticeRouter  # payer notices -> SMS messages (the dispatchers route them)
    consent: ConsentLedger
    schedules: ScheduleService
    verification: CardVerification  # the per-card limit on wrong birth dates
    endpoints: WebhookService  # webhook endpoints and events (the dispatcher is the runtime's)
    console_users: ConsoleUsers
    console_sessions: SessionStore
    console_mfa: SecondFactor
    pg_accounts: PgAccounts  # PG accounts and merchants' routes to them (secrets sealed)

    async def close(self) -> None:
        self.consent.keys.close()
        await self.db.close()
