"""The engine process: every long-running task, started and stopped in one place.

``Engine.run()`` runs, in one ``TaskGroup``: the ARI Stasis app (reconnecting), the
FastAGI server, the call-session log writer and the sweeper that expires leases and
call requests, releases requests a dead engine left ``in_call``, and reconciles charge
attempts whose outcome is unknown. Each incoming
call — over ARI or FastAGI — gets a call-session row and is handed, wrapped in a
:class:`~ivr.telephony.session_log.LoggedCall`, to ``flow``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from datetime import timedelta
from typing import Any

from ivr.payments.charger import Charger
from ivr.telephony.agi import AgiServer
from ivr.telephony.ari import AriClient
from ivr.telephony.ari_app import AriApp
from ivr.telephony.call import Call
from ivr.telephony.errors import CallHungUp
from ivr.telephony.session_log import CallSessionLog, LoggedCall
from ivr.wiring import Services

log = logging.getLogger(__name__)

Flow = Callable[[LoggedCall], Awaitable[str | None]]
"""A call flow: runs the call, returns the session outcome word (or None)."""


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
        workers: Mapping[str, Callable[[], Coroutine[Any, Any, None]]] | None = None,
    ) -> None:
        """``workers``: more long-running loops for the task group, by name (the
        scheduler, the webhook and SMS dispatchers, the REST API server)."""
        self.services = services
        self.charger = charger
        self.flow = flow
        self.workers = dict(workers or {})
        self.sweep_interval_s = sweep_interval_s
        settings = services.settings.asterisk
        self.session_log = CallSessionLog(services.db, services.clock)
        self.ari_client = AriClient(
            settings.ari_url,
            settings.ari_user,
            settings.ari_password.get_secret_value(),
            settings.app,
        )
        self.ari_app = AriApp(self.ari_client, self.handle) if ari else None
        self.agi_server = AgiServer(self.handle, "127.0.0.1", settings.agi_port) if agi else None
        self.ready = asyncio.Event()  # AGI listening and ARI connected (those enabled)

    async def handle(self, call: Call) -> None:
        handle = self.session_log.open(call)
        logged = LoggedCall(call, handle)
        outcome: str | None = "error"
        try:
            outcome = await self.flow(logged)
        except CallHungUp:
            outcome = "caller_hung_up"
            raise
        finally:
            handle.close(outcome or "ended")

    async def run(self) -> None:
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
                self.ready.set()
                await asyncio.Event().wait()  # until cancelled
            finally:
                if self.agi_server is not None:
                    await self.agi_server.stop()

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
                if self.charger is not None:  # attempts left unknown or pending: ask the PG
                    await self.charger.reconcile()
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
