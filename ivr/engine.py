"""The engine process: every long-running task, started and stopped in one place.

``Engine.run()`` runs, in one ``TaskGroup``: the ARI Stasis app (reconnecting), the
FastAGI server, the call-session log writer and the sweeper that expires leases and
call requests, releases requests a dead engine left ``in_call``, drives every payment
intent, charge attempt and refund left open to its end (asking the PG) and deletes the
PG billing keys of deleted cards and of failed registrations.
Each incoming call — over ARI or FastAGI — gets a call-session row and is handed, wrapped in a
:class:`~ivr.telephony.session_log.LoggedCall`, to ``flow``. Once ARI is up, calls an
earlier engine process left open (it was killed mid-call) are ended at once, so their
payers can call again without waiting for the sweeper. Outside ``engine.dev_mode`` the
links in use need real credentials (:mod:`ivr.telephony.credentials`): no development
ARI password, a FastAGI secret that every AGI connection must present.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from ivr.cards.billing_keys import BillingKeyReaper
from ivr.cards.key_requests import BillingKeyRequests
from ivr.domain.states import CallSessionStatus
from ivr.observability.calls import CallMeter
from ivr.observability.registry import Metrics
from ivr.payments.charger import Charger
from ivr.payments.refunds import Refunder
from ivr.store.tables import CallSession, CallStep
from ivr.telephony.agi import AgiServer
from ivr.telephony.ari import AriClient
from ivr.telephony.ari_app import AriApp
from ivr.telephony.ari_events import HANDLED_EVENTS
from ivr.telephony.call import Call
from ivr.telephony.credentials import checked
from ivr.telephony.errors import AriError, CallHungUp
from ivr.telephony.session_log import CallSessionLog, LoggedCall
from ivr.wiring import Services

log = logging.getLogger(__name__)

Flow = Callable[[LoggedCall], Awaitable[str | None]]
"""A call flow: runs the call, returns the session outcome word (or None)."""

LOST = "engine_lost"  # outcome of a call (and its open step) a dead engine process left


def node_id(configured: str) -> str:
    """``engine.node_id``, or this machine's host name (cut to the column's 64
    characters) when it is empty."""
    return configured or socket.gethostname()[:64] or "engine"


class Engine:
    def __init__(
        self,
        services: Services,
        flow: Flow,
        *,
        sweep_interval_s: float = 30.0,
        ari: bool = True,
        agi: bool = True,
        charger: Charger | None = None,
        refunds: Refunder | None = None,
        key_requests: BillingKeyRequests | None = None,
        workers: Mapping[str, Callable[[], Coroutine[Any, Any, None]]] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """``workers``: more long-running loops for the task group, by name (the
        scheduler, the webhook and SMS dispatchers, the REST API server); ``metrics``:
        the runtime's (a private registry when not given)."""
        self.services = services
        self.metrics = metrics or Metrics(process=False)
        self.charger = charger
        self.refunds = refunds
        self.key_requests = key_requests
        self.flow = flow
        self.workers = dict(workers or {})
        self.sweep_interval_s = sweep_interval_s
        settings = services.settings.asterisk
        # The links in use need real credentials (ConfigError otherwise, outside dev mode).
        creds = checked(services.settings, ari=ari, agi=agi)
        self.node = node_id(services.settings.engine.node_id)
        self.session_log = CallSessionLog(services.db, services.clock, node=self.node)
        self.ari_client = AriClient(
            settings.ari_url,
            settings.ari_user,
            creds.ari_password.get_secret_value(),
            settings.app,
            rest_over_ws=settings.ari_rest_over_ws,
            events=HANDLED_EVENTS,
        )
        self.ari_app = (
            AriApp(self.ari_client, self._handle_ari, on_link=self._ari_link) if ari else None
        )
        self.agi_server = (
            AgiServer(
                self._handle_agi,
                "127.0.0.1",
                settings.agi_port,
                secret=creds.agi_secret.get_secret_value(),
            )
            if agi
            else None
        )
        self.ready = asyncio.Event()  # AGI listening and ARI connected (those enabled)
        self.reaper = (
            BillingKeyReaper(
                services.db,
                charger.gateway,
                services.clock,
                after=timedelta(minutes=services.settings.gateway.billing_key_delete_after_minutes),
            )
            if charger is not None
            else None
        )

    async def handle(self, call: Call, *, path: str = "other") -> None:
        """Run one call (``path``: ari, agi, or other for an in-process fake)."""
        handle = self.session_log.open(call)
        meter = CallMeter.start(self.metrics, path)
        logged = LoggedCall(call, handle, meter)
        outcome: str | None = "error"
        try:
            outcome = await self.flow(logged)
        except CallHungUp:
            outcome = "caller_hung_up"
            raise
        finally:
            handle.close(outcome or "ended")
            meter.end(outcome)

    async def _handle_ari(self, call: Call) -> None:
        await self.handle(call, path="ari")

    async def _handle_agi(self, call: Call) -> None:
        await self.handle(call, path="agi")

    def _ari_link(self, up: bool) -> None:
        self.metrics.ari_connected.set(1 if up else 0)
        if up:
            self.metrics.ari_connects.inc()

    @property
    def ari_up(self) -> bool | None:
        """Whether the ARI WebSocket is up now; ``None`` when ARI is off."""
        return None if self.ari_app is None else self.ari_app.connected.is_set()

    async def run(self) -> None:
        started = self.services.clock.now()
        async with self.ari_client, asyncio.TaskGroup() as tg:
            tg.create_task(self.session_log.run(), name="session-log")
            tg.create_task(self._sweeper(), name="sweeper")
            for name, worker in self.workers.items():
                tg.create_task(worker(), name=name)
            if self.agi_server is not None:
                await self.agi_server.start()
            try:
                if self.ari_app is not None:
                    tg.create_task(self.ari_app.run(), name="ari")
                    await self.ari_app.connected.wait()
                try:
                    await self.end_orphaned_calls(before=started)
                except Exception:
                    log.exception("could not end the calls of an earlier engine process")
                self.ready.set()
                await asyncio.Event().wait()  # until cancelled
            finally:
                if self.agi_server is not None:
                    await self.agi_server.stop()

    async def end_orphaned_calls(self, *, before: datetime) -> int:
        """End the calls an earlier engine process left open (it died mid-call: their
        flow state died with it). A channel still in our Stasis app is hung up; the
        session (and its open step) ends ``engine_lost`` and its request is released
        as after any call without an outcome. Without this the request stays
        ``in_call`` (the payer is rejected as busy) until the sweeper's 30 minutes.

        Only this engine's calls are judged: sessions it opened (``node`` is its
        ``engine.node_id``), never those of other engines sharing the database, whose
        calls are up on other Asterisks (their channels are not in this Asterisk's list,
        so they would look dead). Sessions from before migration 0005 carry no node:
        they are judged by their channel id, which must carry this Asterisk's system name
        (``NAME-epoch.seq``), or be a plain ``epoch.seq`` when it has none.
        Returns how many sessions were ended."""
        db = self.services.db
        async with db.sessions() as s:
            rows = (
                await s.execute(
                    select(
                        CallSession.id,
                        CallSession.channel_id,
                        CallSession.call_request_id,
                        CallSession.node,
                    )
                    .where(
                        CallSession.ended_at.is_(None),
                        CallSession.started_at < before,
                        or_(CallSession.node == self.node, CallSession.node.is_(None)),
                    )
                    .order_by(CallSession.started_at)
                )
            ).all()
        if not rows:
            return 0
        if self.ari_app is None:
            # FastAGI only: a call lives on its TCP connection to this process, so every
            # call of this node from before it started is dead. (Rows without a node
            # cannot be judged without ARI: the sweeper's 30 minutes release them.)
            return await self._end_sessions([(r.id, r.call_request_id) for r in rows
                                             if r.node == self.node])  # fmt: skip
        if any(r.node is None for r in rows):
            info = await self.ari_client.info()
            name = str((info.get("config") or {}).get("name") or "")
            own_id = re.compile(re.escape(f"{name}-") + r"\d+\.\d+" if name else r"\d+\.\d+")
            rows = [r for r in rows if r.node is not None or own_id.fullmatch(r.channel_id)]
        live = {c["id"] for c in await self.ari_client.request("GET", "/channels") or []}
        app = await self.ari_client.request("GET", f"/applications/{self.ari_client.app}")
        in_app = set(app.get("channel_ids", [])) if isinstance(app, dict) else set()
        dead: list[tuple[str, str | None]] = []
        for session_id, channel_id, request_id, _node in rows:
            if channel_id in live:
                if channel_id not in in_app:
                    continue  # not ours to judge (another app, or still in the dialplan)
                with contextlib.suppress(AriError):
                    await self.ari_client.hangup(channel_id)
            dead.append((session_id, request_id))
        return await self._end_sessions(dead)

    async def _end_sessions(self, dead: list[tuple[str, str | None]]) -> int:
        """End these sessions (and their open steps) ``engine_lost`` and release their
        requests; returns how many."""
        db = self.services.db
        for session_id, request_id in dead:
            now = self.services.clock.now()
            async with db.transaction() as s:
                await s.execute(
                    update(CallSession)
                    .where(CallSession.id == session_id, CallSession.ended_at.is_(None))
                    .values(status=CallSessionStatus.ended.value, outcome=LOST, ended_at=now)
                )
                await s.execute(
                    update(CallStep)
                    .where(CallStep.session_id == session_id, CallStep.outcome.is_(None))
                    .values(outcome=LOST, ended_at=now)
                )
            if request_id is not None:
                await self.services.requests.release_call(
                    request_id, max_calls=self.services.settings.calls.max_calls_per_request
                )
        if dead:
            log.warning("ended %d call(s) left open by an earlier engine process", len(dead))
        return len(dead)

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            try:
                await self.services.requests.expire_due()
                await self.services.requests.release_stale_calls(
                    older_than=timedelta(minutes=30),
                    max_calls=self.services.settings.calls.max_calls_per_request,
                )
                await self.services.dids.expire_due()
                if self.charger is not None:  # intents and attempts left open: ask the PG
                    await self.charger.reconcile()
                if self.refunds is not None:  # refunds left open: ask the PG
                    await self.refunds.reconcile()
                if self.reaper is not None:  # deleted cards' billing keys, at the PG too
                    await self.reaper.reap()
                if self.key_requests is not None:  # keys of registrations that failed
                    await self.key_requests.sweep()
            except Exception:
                log.exception("sweeper failed")


@contextlib.asynccontextmanager
async def running(engine: Engine, timeout_s: float = 15.0) -> AsyncIterator[Engine]:
    """Run the engine in the background until the block ends (tests, scripts)."""
    task = asyncio.create_task(engine.run(), name="engine")
    try:
        ready = asyncio.ensure_future(engine.ready.wait())
        done, _ = await asyncio.wait(
            {ready, task}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            task.result()  # raises what stopped it
        if ready not in done:
            ready.cancel()
            raise TimeoutError("engine did not become ready (is Asterisk's ARI reachable?)")
        yield engine
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
