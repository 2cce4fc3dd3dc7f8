"""How the engine serves the web app: uvicorn *inside the engine's event loop* (the
engine's own signal handling stays in charge: uvicorn's is switched off).

``arspay engine run`` hands :func:`api_worker` to :meth:`ivr.runtime.Runtime.engine`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from ivr.api.deps import ApiDeps
from ivr.api.idempotency import IdempotencyStore
from ivr.console.web import ConsoleDeps
from ivr.errors import ConfigError
from ivr.runtime import Runtime
from ivr.settings import ApiSettings
from ivr.web.app import create_app

log = logging.getLogger("arspay.api")


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (the engine owns SIGTERM/SIGINT)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def api_worker(rt: Runtime, *, purge_every_s: float = 3600.0) -> None:
    """The engine's API worker: serve the app and purge expired idempotency keys."""
    deps = ApiDeps.from_runtime(rt)
    console = None
    if rt.services.settings.console.enabled:
        console = ConsoleDeps.from_runtime(rt, deps)
    app = create_app(deps, console=console)
    store: IdempotencyStore = app.state.gate.store  # the one the gate keys requests in

    async def purge() -> None:
        while True:
            try:
                await store.purge()
                if console is not None:
                    await console.sessions.purge()
            except Exception:  # a database hiccup must not stop the API
                log.exception("idempotency key purge failed")
            await asyncio.sleep(purge_every_s)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(purge(), name="api-purge")
        tg.create_task(serve(app, deps.settings), name="api-serve")


async def serve(app: FastAPI, settings: ApiSettings) -> None:
    """Serve until cancelled."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # paths hold only ids, but the engine logs what it chooses
        lifespan="off",
        server_header=False,
        proxy_headers=False,  # the app's own middleware, from api.trusted_proxies
    )
    server = _Server(config)
    log.info("api listening on http://%s:%d", settings.host, settings.port)
    try:
        await server.serve()
    except asyncio.CancelledError:
        # Close the listening socket and the open connections before going: cancelling
        # uvicorn's main loop skips its own shutdown.
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.shutdown(), timeout=5)
        raise
    except SystemExit:  # uvicorn exits when it cannot bind
        raise ConfigError(
            f"the API cannot listen on {settings.host}:{settings.port} (in use?)"
        ) from None
