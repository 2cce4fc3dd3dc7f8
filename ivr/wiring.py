"""Wiring: build every service once from :class:`~ivr.settings.Settings`.

The one place that knows which concrete adapter each service gets; the CLI, the engine
process and tests all go through :func:`build`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ivr.clock import Clock, SystemClock
from ivr.consent.keys import ConsentKeys, checkpoint_dir
from ivr.consent.ledger import ConsentLedger
from ivr.dids.pool import DidPool
from ivr.merchants.service import CustomerService, MerchantService
from ivr.requests.service import CallRequestService, DevOutbox
from ivr.settings import Settings
from ivr.store.db import Database


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
    consent: ConsentLedger

    async def close(self) -> None:
        self.consent.keys.close()
        await self.db.close()


def build(
    settings: Settings, *, clock: Clock | None = None, db: Database | None = None
) -> Services:
    clock = clock or SystemClock()
    db = db or Database.from_settings(settings)
    pool = DidPool(
        db,
        clock,
        lease_lifetime=timedelta(minutes=settings.dids.lease_minutes),
        cooldown=timedelta(minutes=settings.dids.cooldown_minutes),
    )
    requests = CallRequestService(
        db, clock, pool, sms_sender=settings.sms.sender, sms_adapter=settings.sms.adapter
    )
    return Services(
        settings=settings,
        clock=clock,
        db=db,
        dids=pool,
        merchants=MerchantService(db, clock),
        customers=CustomerService(db, clock),
        requests=requests,
        outbox=DevOutbox(db, clock, requests),
        consent=ConsentLedger(
            db, clock, ConsentKeys.from_settings(settings), checkpoint_dir(settings)
        ),
    )
