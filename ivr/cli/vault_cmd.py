"""``arspay vault``: keys, the vault service, KEK rotation, the decrypt audit.

No command prints card data: status shows KEK ids and counts, audit shows who/when/why
and tokens.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import typer
from rich.console import Console

from ivr.cli.app import app, emit, run, state
from ivr.settings import Settings
from vault.factory import database_url, init_keys, open_vault
from vault.server import VaultServer
from vault.service import LocalVault

T = TypeVar("T")

vault_app = typer.Typer(help="The card vault.", no_args_is_help=True)
app.add_typer(vault_app, name="vault")


def _operator() -> str:
    return f"cli:{getpass.getuser()}"


def _with_vault(settings: Settings, body: Callable[[LocalVault], Awaitable[T]]) -> T:
    async def go() -> T:
        vault = await open_vault(settings)
        try:
            return await body(vault)
        finally:
            await vault.close()

    return run(go())


@vault_app.command("init")
def init(ctx: typer.Context) -> None:
    """Create the first KEK and the fingerprint key where missing, and the vault database."""
    settings = state(ctx).settings

    async def go() -> None:
        report = init_keys(settings)
        vault = await open_vault(settings)
        await vault.close()
        emit(ctx, "Vault", [{
            "kek_provider": settings.vault.kek_provider,
            "kek": report.kek_id,
            "kek_created": report.kek_created,
            "fingerprint_key_created": report.fingerprint_key_created,
        }])  # fmt: skip

    run(go())


@vault_app.command("status")
def status(ctx: typer.Context) -> None:
    """KEK ids and states, records per KEK — never card data."""
    settings = state(ctx).settings
    st = _with_vault(settings, lambda v: v.status())
    rows = [
        {"kek": k.kek_id, "state": k.state, "records": k.records, "created_at": k.created_at,
         "retired_at": k.retired_at}
        for k in st.keks
    ]  # fmt: skip
    if state(ctx).json:
        plain = [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in r.items()}
                 for r in rows]  # fmt: skip
        emit(ctx, "", [{"kek_provider": st.kek_provider, "current_kek": st.current_kek,
                        "records": st.records, "keks": plain}])  # fmt: skip
        return
    typer.echo(f"provider {st.kek_provider}, current KEK {st.current_kek}, {st.records} record(s)")
    emit(ctx, "KEKs", rows)


@vault_app.command("rotate-kek")
def rotate_kek(ctx: typer.Context) -> None:
    """New KEK; re-wrap every data key online (the service keeps serving); retire the old."""
    settings = state(ctx).settings
    err = Console(stderr=True)

    def progress(done: int) -> None:
        if not state(ctx).json:
            err.print(f"re-wrapped {done}", highlight=False)

    report = _with_vault(settings, lambda v: v.rotate_kek(progress=progress))
    rate = report.rewrapped / report.seconds if report.seconds else 0.0
    emit(ctx, "Rotation", [{
        "new_kek": report.new_kek,
        "retired": ", ".join(report.retired),
        "rewrapped": report.rewrapped,
        "seconds": round(report.seconds, 3),
        "per_second": round(rate),
    }])  # fmt: skip


@vault_app.command("audit")
def audit(
    ctx: typer.Context,
    token: str | None = typer.Option(None, "--token", help="only this card token"),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="newest N entries"),
) -> None:
    """Who decrypted (or stored, or erased) which card, when and why; newest first."""
    settings = state(ctx).settings
    entries = _with_vault(settings, lambda v: v.audit(token=token, limit=limit))
    emit(ctx, "Vault audit", [
        {"id": e.id, "at": e.at, "who": e.who, "peer": e.peer, "action": e.action,
         "why": e.why, "token": e.token, "merchant": e.merchant_id}
        for e in entries
    ])  # fmt: skip


@vault_app.command("serve")
def serve(ctx: typer.Context) -> None:
    """Run the vault service on its Unix socket (vault.socket, mode 0600) until stopped."""
    settings = state(ctx).settings
    logging.basicConfig(
        level=settings.log.level.upper(), stream=sys.stderr, format="%(asctime)s %(message)s"
    )

    async def go() -> None:
        # Card forwarding needs a CardGateway: the payment-gateway connectors bring one.
        vault = await open_vault(settings)
        server = VaultServer(
            vault, settings.vault.socket, max_frame_bytes=settings.vault.max_frame_bytes
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await server.start()
            typer.echo(f"vault serving on {settings.vault.socket} ({database_url_kind(settings)})")
            await stop.wait()
        finally:
            await server.close()
            await vault.close()

    run(go())


def database_url_kind(settings: Settings) -> str:
    return database_url(settings).split(":", 1)[0]
