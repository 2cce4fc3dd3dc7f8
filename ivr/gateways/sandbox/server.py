"""Run the sandbox PG as a process until SIGINT/SIGTERM (``arspay sandbox-pg``)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from aiohttp import web

from ivr.gateways.sandbox.app import create_app
from ivr.gateways.sandbox.config import SandboxConfig


async def serve(
    config: SandboxConfig, host: str, port: int, on_ready: Callable[[str], None]
) -> None:
    """Listen on ``host:port`` (0 = any free port); ``on_ready`` gets the base URL."""
    runner = web.AppRunner(create_app(config), access_log=None)  # no logs of request lines
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        on_ready(f"http://{host}:{bound[1]}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
