"""The engine process's whole stack, assembled once: services, PG connector, vault
(in-process or over its socket), prompt book, charger, and the call flows.

``arspay engine run``, ``scripts/demo`` and the end-to-end tests all start the engine
through :func:`open_runtime`, so they run the same wiring.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ivr.billing.scheduler import Scheduler
from ivr.bulk.wiring import Bulk, build_bulk
from ivr.cards.key_requests import BillingKeyRequests
from ivr.cards.service import CardService
from ivr.cards.sweep import OrphanSweep
from ivr.cards.verification import CardVerification
from ivr.clock import Clock
from ivr.consent.evidence import run_checkpoints
from ivr.engine import Engine
from ivr.flows.router import CallFlows
from ivr.flows.run import FlowDeps
from ivr.flows.voice import Book
from ivr.gateways.contract import Gateway
from ivr.gateways.factory import build_gateway
from ivr.gateways.vault_forwarding import VaultCardGateway
from ivr.jobs.queue import JobQueue
from ivr.notify.sms import build_sender
from ivr.notify.sms.dispatch import SmsDispatcher
from ivr.payments.charger import ChargePolicy, Charger
from ivr.payments.service import PaymentService
from ivr.settings import Settings
from ivr.store.db import Database
from ivr.webhooks.delivery import WebhookDispatcher
from ivr.wiring import Services, build
from vault.client import VaultClient


@dataclass
class Runtime:
    services: Services
    gateway: Gateway
    vault: VaultClient
    book: Book
    charger: Charger
    deps: FlowDeps
    scheduler: Scheduler
    bulk: Bulk
    sms: SmsDispatcher
    webhooks: WebhookDispatcher

    def engine(
        self,
        *,
        sweep_interval_s: float | None = None,
        ari: bool | None = None,
        agi: bool = True,
        scheduler: bool = True,
        api: bool = False,
    ) -> Engine:
        """The engine process: calls, the sweeper, and the background workers;
        ``api``: also serve the merchant REST API (``settings.api``). The sweep interval
        and ARI default to ``engine.sweep_interval_s`` and ``asterisk.ari_enabled``."""
        settings = self.services.settings
        workers: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {}
        if scheduler:
            workers["scheduler"] = self.scheduler.run
            workers["bulk"] = self.bulk.charges.run
            workers["bulk-registrations"] = self.bulk.registrations.run
            workers["sms"] = self.sms.run
            workers["webhooks"] = self.webhooks.run
            workers["orphan-sweep"] = self.orphan_sweep
            workers["consent-checkpoints"] = self.consent_checkpoints
            if self.vault_is_local():
                workers["vault-audit-checkpoints"] = self.vault_audit_checkpoints
        if api:
            from ivr.api.app import api_worker

            workers["api"] = lambda: api_worker(self)
        return Engine(
            self.services,
            CallFlows(self.deps),
            charger=self.charger,
            refunds=self.deps.payments.refunds,
            key_requests=self.deps.key_requests,
            sweep_interval_s=(
                settings.engine.sweep_interval_s if sweep_interval_s is None else sweep_interval_s
            ),
            ari=settings.asterisk.ari_enabled if ari is None else ari,
            agi=agi,
            workers=workers,
        )

    async def orphan_sweep(self) -> None:
        """Erase vault records no card refers to, every ``vault.sweep_interval_minutes``."""
        settings, services = self.services.settings.vault, self.services
        sweep = OrphanSweep(
            services.db,
            self.vault,
            services.clock,
            grace=timedelta(minutes=settings.orphan_grace_minutes),
            gateway=self.gateway,
        )
        await sweep.run(timedelta(minutes=settings.sweep_interval_minutes))

    async def consent_checkpoints(self) -> None:
        """Seal the consent chain (an upgraded database) and write a signed checkpoint
        of its head into ``consent.checkpoint_dir`` every interval."""
        minutes = self.services.settings.consent.checkpoint_interval_minutes
        await run_checkpoints(self.services.consent, minutes * 60.0)

    def vault_is_local(self) -> bool:
        from vault.service import LocalVault

        return isinstance(self.vault, LocalVault)

    async def vault_audit_checkpoints(self) -> None:
        """The in-process vault's audit checkpoints (``vault serve`` writes its own)."""
        from vault.factory import audit_checkpoints
        from vault.service import LocalVault

        assert isinstance(self.vault, LocalVault)
        settings = self.services.settings
        await self.vault.run_audit_checkpoints(
            audit_checkpoints(settings), settings.vault.audit_checkpoint_interval_minutes * 60.0
        )

    async def close(self) -> None:
        await self.sms.sender.close()
        await self.webhooks.close()
        await self.vault.close()
        close = getattr(self.gateway, "aclose", None)
        if close is not None:
            await close()
        await self.services.close()


async def open_vault_client(
    settings: Settings, *, clock: Clock | None = None, gateway: VaultCardGateway | None = None
) -> VaultClient:
    """The vault as ``vault.mode`` says: in this process (forwarding to ``gateway``), or
    ``arspay vault serve`` over its socket (which forwards with its own gateway)."""
    if settings.vault.mode == "remote":
        from vault.remote import RemoteVault

        return RemoteVault(
            settings.vault.socket,
            max_frame_bytes=settings.vault.max_frame_bytes,
            max_idle_s=settings.vault.idle_timeout_s / 2,  # before the server closes it
        )
    from vault.factory import open_vault

    return await open_vault(settings, clock=clock, gateway=gateway)


async def open_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    db: Database | None = None,
    book: Book | None = None,
    gateway: Gateway | None = None,
    vault: VaultClient | None = None,
    transcript: Callable[[str, str], None] | None = None,
) -> Runtime:
    services = build(settings, clock=clock, db=db)
    pg: Gateway = gateway or build_gateway(settings.gateway)
    if vault is None:
        vault = await open_vault_client(settings, clock=clock, gateway=VaultCardGateway(pg))
    if book is None:
        from ivr.prompts import PromptBook

        book = PromptBook.from_settings(settings.prompts)
    policy = ChargePolicy.from_settings(settings.gateway)
    charger = Charger(services.db, services.clock, pg, policy)
    deps = FlowDeps(
        services=services,
        book=book,
        vault=vault,
        cards=CardService(services.db, services.clock, vault),
        payments=PaymentService(services.db, services.clock, pg, policy),
        charger=charger,
        key_requests=BillingKeyRequests(
            services.db,
            services.clock,
            pg,
            settle=timedelta(seconds=policy.settle_s),
            grace=timedelta(minutes=settings.vault.orphan_grace_minutes),
        ),
        verification=CardVerification(services.db, services.clock),
        transcript=transcript,
    )
    queue = JobQueue(services.db, services.clock, worker_id=f"{socket.gethostname()}:{os.getpid()}")
    lease_s = settings.engine.job_lease_s
    scheduler = Scheduler(
        services.db, services.clock, queue, deps.payments, charger, services.requests,
        lease_s=lease_s,
    )  # fmt: skip
    bulk = build_bulk(
        services.db,
        services.clock,
        queue,
        deps.payments,
        charger,
        customers=services.customers,
        requests=services.requests,
        lease_s=lease_s,
    )
    sms = SmsDispatcher(
        services.db,
        services.clock,
        build_sender(settings.sms),
        settings.sms,
        services.requests,
    )
    webhooks = WebhookDispatcher(services.db, services.clock, settings.webhooks)
    return Runtime(services, pg, vault, book, charger, deps, scheduler, bulk, sms, webhooks)
