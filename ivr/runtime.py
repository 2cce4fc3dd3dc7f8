"""The composition root: the one module that builds services, each once.

* :func:`build` — the core services (:class:`~ivr.wiring.Services`: the database and
  what needs nothing else), for CLI commands that must not open the vault or PG;
* :func:`open_runtime` — everything: the core, PG connector, vault (in-process or over
  its socket), prompt book, charger, card and payment services, the background workers,
  and the views each layer takes (:class:`~ivr.flows.run.FlowDeps` for the call flows;
  the web layer fills ``ApiDeps``/``ConsoleDeps`` from a :class:`Runtime`).

Nothing here imports the web layer: ``ivr.web`` depends on the runtime, not back (the
engine is handed the API worker, :meth:`Runtime.engine`). ``arspay engine run``,
``scripts/demo`` and the end-to-end tests all start the engine through
:func:`open_runtime`, so they run the same wiring.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ivr.billing.scheduler import Scheduler
from ivr.billing.schedules import ScheduleService
from ivr.bulk.wiring import Bulk, build_bulk
from ivr.cards.key_requests import BillingKeyRequests
from ivr.cards.service import CardService
from ivr.cards.sweep import OrphanSweep
from ivr.cards.verification import CardVerification
from ivr.clock import Clock, SystemClock
from ivr.consent.evidence import run_checkpoints
from ivr.consent.keys import ConsentKeys, checkpoint_dir
from ivr.consent.ledger import ConsentLedger
from ivr.console.mfa import MfaKey, SecondFactor, key_path
from ivr.console.sessions import SessionStore
from ivr.console.users import ConsoleUsers
from ivr.dids.pool import DidPool
from ivr.engine import Engine
from ivr.flows.router import CallFlows
from ivr.flows.run import FlowDeps
from ivr.flows.voice import Book
from ivr.gateways.contract import Gateway
from ivr.gateways.factory import build_gateway, gateway_for_route
from ivr.gateways.vault_forwarding import VaultCardGateway
from ivr.jobs.queue import JobQueue
from ivr.merchants.service import CustomerService, MerchantService
from ivr.notify.alimtalk.dispatch import AlimtalkDispatcher
from ivr.notify.alimtalk.factory import build_provider
from ivr.notify.notices.router import NoticeRouter
from ivr.notify.sms import build_sender
from ivr.notify.sms.dispatch import SmsDispatcher
from ivr.observability.readiness import Readiness
from ivr.observability.registry import Metrics
from ivr.observability.sampler import Sampler
from ivr.observability.telemetry import Telemetry
from ivr.observability.vault import MeteredVault
from ivr.payments.charger import ChargePolicy, Charger
from ivr.payments.service import PaymentService
from ivr.pg_accounts.book import GatewayBook
from ivr.pg_accounts.migration import CardMigrator
from ivr.pg_accounts.store import PgAccounts, accounts_key
from ivr.pg_accounts.worker import card_migrator, drive
from ivr.requests.service import CallRequestService, DevOutbox
from ivr.settings import Settings
from ivr.store.db import Database
from ivr.webhooks.delivery import WebhookDispatcher
from ivr.webhooks.service import WebhookService
from ivr.wiring import Services
from vault.client import VaultClient

WebWorker = Callable[["Runtime"], Coroutine[Any, Any, None]]


@dataclass
class Runtime:
    services: Services
    gateway: Gateway  # the default account's (behind its breaker)
    gateways: GatewayBook  # every PG account's
    vault: VaultClient
    book: Book
    charger: Charger
    cards: CardService
    payments: PaymentService
    key_requests: BillingKeyRequests
    deps: FlowDeps  # the call flows' view of the above
    scheduler: Scheduler
    bulk: Bulk
    sms: SmsDispatcher
    alimtalk: AlimtalkDispatcher | None  # KakaoTalk 알림톡 first, when configured
    webhooks: WebhookDispatcher
    sweep: OrphanSweep
    migrations: CardMigrator  # cards moving between PG accounts (arspay cards migrate)
    telemetry: Telemetry  # metrics, readiness (served at /metrics, /ready)

    def engine(
        self,
        *,
        sweep_interval_s: float | None = None,
        ari: bool | None = None,
        agi: bool = True,
        scheduler: bool = True,
        api: WebWorker | None = None,
    ) -> Engine:
        """The engine process: calls, the sweeper, and the background workers;
        ``api``: also run this web worker (``ivr.web.serve.api_worker``: the merchant
        REST API and the console, ``settings.api``), handed in so that the runtime does
        not depend on the web layer. The sweep interval and ARI default to
        ``engine.sweep_interval_s`` and ``asterisk.ari_enabled``."""
        settings = self.services.settings
        workers: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {}
        if scheduler:
            workers["scheduler"] = self.scheduler.run
            workers["bulk"] = self.bulk.charges.run
            workers["bulk-registrations"] = self.bulk.registrations.run
            workers["sms"] = self.sms.run
            if self.alimtalk is not None:
                workers["alimtalk"] = self.alimtalk.run
            workers["webhooks"] = self.webhooks.run
            workers["orphan-sweep"] = self.orphan_sweep
            workers["consent-checkpoints"] = self.consent_checkpoints
            workers["card-migrations"] = self.card_migrations
            if self.vault_is_local():
                workers["vault-audit-checkpoints"] = self.vault_audit_checkpoints
        if api is not None:
            workers["api"] = lambda: api(self)
        engine = Engine(
            self.services,
            CallFlows(self.deps),
            charger=self.charger,
            refunds=self.payments.refunds,
            key_requests=self.key_requests,
            sweep_interval_s=(
                settings.engine.sweep_interval_s if sweep_interval_s is None else sweep_interval_s
            ),
            ari=settings.asterisk.ari_enabled if ari is None else ari,
            agi=agi,
            workers=workers,
            metrics=self.telemetry.metrics,
        )
        links = self.telemetry.readiness.links
        links["engine"] = lambda: None if engine.ready.is_set() else "starting"
        if engine.ari_app is not None:
            links["ari"] = lambda: None if engine.ari_up else "disconnected"
        else:
            links.pop("ari", None)
        return engine

    async def orphan_sweep(self) -> None:
        """Erase vault records no card refers to, every ``vault.sweep_interval_minutes``."""
        minutes = self.services.settings.vault.sweep_interval_minutes
        await self.sweep.run(timedelta(minutes=minutes))

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

    async def card_migrations(self) -> None:
        """The running card migration batches, driven (ivr/pg_accounts/worker.py)."""
        await drive(self.migrations, self.services.clock)

    async def close(self) -> None:
        await self.migrations.close()
        await self.sms.sender.close()
        if self.alimtalk is not None:
            await self.alimtalk.provider.close()
        await self.webhooks.close()
        await self.vault.close()
        await self.gateways.aclose()
        close = getattr(self.gateway, "aclose", None)
        if close is not None:
            await close()
        await self.services.close()


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    db: Database | None = None,
    metrics: Metrics | None = None,
) -> Services:
    """The core services (the database's, no PG or vault); ``metrics``: where the DID
    pool counts the leases it refused."""
    clock = clock or SystemClock()
    db = db or Database.from_settings(settings)
    pool = DidPool(
        db,
        clock,
        lease_lifetime=timedelta(minutes=settings.dids.lease_minutes),
        cooldown=timedelta(minutes=settings.dids.cooldown_minutes),
        on_exhausted=metrics.did_exhausted.inc if metrics is not None else None,
    )
    requests = CallRequestService(
        db, clock, pool, sms_sender=settings.sms.sender, sms_adapter=settings.sms.adapter
    )
    notices = NoticeRouter(
        db,
        clock,
        sms_sender=settings.sms.sender,
        sms_adapter=settings.sms.adapter,
        alimtalk=settings.alimtalk if settings.alimtalk.enabled else None,
    )
    return Services(
        settings=settings,
        clock=clock,
        db=db,
        dids=pool,
        merchants=MerchantService(db, clock),
        customers=CustomerService(db, clock),
        requests=requests,
        outbox=DevOutbox(db, clock, requests, notices),
        notices=notices,
        consent=ConsentLedger(
            db, clock, ConsentKeys.from_settings(settings), checkpoint_dir(settings)
        ),
        schedules=ScheduleService(db, clock),
        verification=CardVerification(db, clock),
        endpoints=WebhookService(db, clock),
        console_users=ConsoleUsers(db, clock, settings.console),
        console_sessions=SessionStore(db, clock, settings.console),
        console_mfa=SecondFactor(db, clock, settings, MfaKey(key_path(settings))),
        pg_accounts=PgAccounts(
            db, clock, accounts_key(settings.gateway, settings.paths.var_dir), settings.gateway
        ),
    )


def card_gateway_of(settings: Settings, default: Gateway | None) -> VaultCardGateway:
    """The vault's card gateway: ``default`` for calls without a route, and a gateway
    built from ``settings.gateway`` (deadlines) and the route's PG account otherwise."""
    base = settings.gateway
    return VaultCardGateway(default, lambda route: gateway_for_route(route, base))


async def open_vault_client(
    settings: Settings, *, clock: Clock | None = None, gateway: VaultCardGateway | None = None
) -> VaultClient:
    """The vault as ``vault.mode`` says: in this process (forwarding to ``gateway``, which
    closes with it), or ``arspay vault serve`` over its socket (which forwards with its
    own gateway)."""
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
    metrics: Metrics | None = None,
) -> Runtime:
    """Everything the engine process runs, each service built once; ``clock``, ``db``,
    ``book``, ``gateway`` and ``vault`` replace the configured ones (tests, the demo).
    ``metrics``: this runtime's instruments (by default a registry of its own)."""
    metrics = metrics or Metrics()
    services = build(settings, clock=clock, db=db, metrics=metrics)
    default: Gateway = gateway or build_gateway(settings.gateway)
    gateways = GatewayBook(services.pg_accounts, services.clock, default=default, metrics=metrics)
    pg = await gateways.of(None)  # the default account's, behind its breaker
    if vault is None:
        card_gateway = card_gateway_of(settings, default)
        vault = await open_vault_client(settings, clock=clock, gateway=card_gateway)
    if book is None:
        from ivr.prompts import PromptBook

        book = PromptBook.from_settings(settings.prompts)
    policy = ChargePolicy.from_settings(settings.gateway)
    db, clock = services.db, services.clock
    metered = MeteredVault(vault, metrics)  # what the services use; ``vault`` is closed
    charger = Charger(db, clock, gateways, policy, requests=services.requests)
    cards = CardService(db, clock, metered)
    payments = PaymentService(db, clock, gateways, policy)
    key_requests = BillingKeyRequests(
        db,
        clock,
        gateways,
        settle=timedelta(seconds=policy.settle_s),
        grace=timedelta(minutes=settings.vault.orphan_grace_minutes),
    )
    deps = FlowDeps(
        services=services,
        book=book,
        vault=metered,
        cards=cards,
        payments=payments,
        charger=charger,
        key_requests=key_requests,
        verification=services.verification,
        transcript=transcript,
        gateways=gateways,
    )
    queue = JobQueue(db, clock, worker_id=f"{socket.gethostname()}:{os.getpid()}")
    lease_s = settings.engine.job_lease_s
    scheduler = Scheduler(db, clock, queue, payments, charger, services.requests, lease_s=lease_s)
    bulk = build_bulk(
        db,
        clock,
        queue,
        payments,
        charger,
        customers=services.customers,
        requests=services.requests,
        lease_s=lease_s,
    )
    sms = SmsDispatcher(
        db,
        clock,
        build_sender(settings.sms),
        settings.sms,
        services.requests,
        notices=services.notices,
    )
    provider = build_provider(settings.alimtalk) if settings.alimtalk.enabled else None
    alimtalk = (
        AlimtalkDispatcher(
            db, clock, provider, settings.alimtalk, settings.sms, notices=services.notices
        )
        if provider is not None
        else None
    )
    webhooks = WebhookDispatcher(db, clock, settings.webhooks)
    sweep = OrphanSweep(
        db,
        metered,
        clock,
        grace=timedelta(minutes=settings.vault.orphan_grace_minutes),
        gateway=pg,
    )
    readiness = Readiness(db, vault, gateways.breakers, metrics)
    sampler = Sampler(
        db, clock, metrics, gateways.breakers, readiness, did_cooldown=services.dids.cooldown
    )
    return Runtime(
        services=services,
        gateway=pg,
        gateways=gateways,
        vault=vault,
        book=book,
        charger=charger,
        cards=cards,
        payments=payments,
        key_requests=key_requests,
        deps=deps,
        scheduler=scheduler,
        bulk=bulk,
        sms=sms,
        alimtalk=alimtalk,
        webhooks=webhooks,
        sweep=sweep,
        migrations=card_migrator(db, clock, metered, gateways),
        telemetry=Telemetry(metrics, readiness, sampler),
    )
