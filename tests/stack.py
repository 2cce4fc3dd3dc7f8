"""The settings every test stack of the engine starts from: no config file, its var
directory and vault keys in a work directory, and the sandbox PG as its gateway."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from ivr.settings import SANDBOX_CHANNEL_KEY, ApiSettings
from ivr.web.serve import serve
from tests.gateways.support import KEY, SECRET


def engine_env(workdir: Path, gateway_url: str, **extra: str) -> dict[str, str]:
    """``ARSPAY_*`` variables of an engine in ``workdir`` (``var/`` below it) whose PG is
    the sandbox at ``gateway_url``; ``extra`` adds to them or overrides them."""
    var = workdir / "var"
    return {
        "ARSPAY_CONFIG": "/nonexistent.toml",
        "ARSPAY_PATHS_VAR_DIR": str(var),
        "ARSPAY_VAULT_KEY_FILE": str(var / "vault" / "kek.key"),
        "ARSPAY_VAULT_FINGERPRINT_KEY_FILE": str(var / "vault" / "fp.key"),
        "ARSPAY_GATEWAY_BASE_URL": gateway_url,
        "ARSPAY_GATEWAY_API_KEY": KEY,
        "ARSPAY_GATEWAY_API_SECRET": SECRET,
        "ARSPAY_GATEWAY_CHANNEL_KEY": SANDBOX_CHANNEL_KEY,
        **extra,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def serving(app: FastAPI, settings: ApiSettings) -> AsyncIterator[str]:
    """``app`` served by uvicorn (the engine's ``serve``) on a free port; yields its URL
    once it accepts connections."""
    port = free_port()
    server = asyncio.create_task(serve(app, settings.model_copy(update={"port": port})))
    try:
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
