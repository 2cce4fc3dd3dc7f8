"""``arspay vault``: keys, the vault service, KEK rotation, the decrypt audit and its
evidence (the audit log's chain checked against checkpoints, checkpoints signed).

No command prints card data or key material: status shows KEK ids and counts, audit
shows who/when/why and tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import resource
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console

from ivr.cards.sweep import OrphanSweep, SweepReport
from ivr.cli.app import app, emit, run, state
from ivr.cli.evidence import (
    CHECKPOINT_OPTION,
    OUT_OPTION,
    document,
    newest_saved,
    read_checkpoints,
    report,
    saved_option,
    write_document,
)
from ivr.gateways.factory import build_gateway, gateway_configured
from ivr.runtime import build, card_gateway_of, open_vault_client
from ivr.settings import Settings
from vault.access import PeerPolicy
from vault.errors import AuditChainBroken
from vault.factory import (
    audit_checkpoints,
    audit_key_path,
    database_url,
    init_keys,
    open_vault,
)
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
        audit_key_existed = audit_key_path(settings).exists()
        vault = await open_vault(settings)  # makes the audit key on first use
        await vault.close()
        emit(ctx, "Vault", [{
            "kek_provider": settings.vault.kek_provider,
            "kek": report.kek_id,
            "kek_created": report.kek_created,
            "fingerprint_key_created": report.fingerprint_key_created,
            "audit_key_created": not audit_key_existed,
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


@vault_app.command("audit-verify")
def audit_verify(
    ctx: typer.Context,
    checkpoint: list[Path] | None = CHECKPOINT_OPTION,
    saved: bool = saved_option("vault.audit_checkpoint_dir"),
) -> None:
    """Check the audit log's MAC chain, and it against each checkpoint (changed,
    inserted and deleted rows, also the newest ones); exit 1 on any problem, one line
    each, 2 if it cannot be checked."""
    settings = state(ctx).settings

    async def body(vault: LocalVault) -> None:
        given, refused = read_checkpoints(checkpoint)
        skipped: list[str] = []
        if saved and vault.audit_key is not None:
            newest, skipped = newest_saved(audit_checkpoints(settings), vault.audit_key)
            given += newest
        result = await vault.audit_verify(given)
        problems = refused + skipped + result.lines()
        if problems:
            summary = f"vault audit log TAMPERED or unverifiable: {len(problems)} problem(s)"
        else:
            summary = (
                f"vault audit log intact: {result.rows} row(s), chain head seq "
                f"{result.head_seq} ({result.sealed} sealed from before the chain); "
                f"consistent with {result.checkpoints} checkpoint(s)"
            )
        report(ctx, ok=not problems, summary=summary, problems=problems,
               data={"rows": result.rows, "head_seq": result.head_seq,
                     "sealed": result.sealed, "checkpoints": result.checkpoints})  # fmt: skip

    _with_vault(settings, body)


@vault_app.command("audit-checkpoint")
def audit_checkpoint(
    ctx: typer.Context,
    out: Path | None = OUT_OPTION,
) -> None:
    """Verify the audit log, then sign a checkpoint of its head: JSON to --out or stdout
    (a copy goes to vault.audit_checkpoint_dir). Exit 1, signing nothing, if the log
    does not verify."""
    settings = state(ctx).settings

    async def body(vault: LocalVault) -> None:
        try:
            cp = await vault.audit_checkpoint(audit_checkpoints(settings))
        except AuditChainBroken as exc:
            typer.echo(f"problem: {exc.message}", err=True)
            raise typer.Exit(1) from None
        write_document(cp.to_json(), out)
        if out is not None:
            typer.echo(f"checkpoint of seq {cp.seq} ({cp.count} row(s)) written to {out}")

    _with_vault(settings, body)


@vault_app.command("audit-public-key")
def audit_public_key(
    ctx: typer.Context,
    out: Path | None = OUT_OPTION,
) -> None:
    """The Ed25519 public key that checks the vault audit checkpoints (JSON)."""
    settings = state(ctx).settings

    async def body(vault: LocalVault) -> None:
        write_document(document(vault.audit_public_key()), out)

    _with_vault(settings, body)


@vault_app.command("erase")
def erase(
    ctx: typer.Context,
    token: str = typer.Argument(..., help="the card token (tok_…)"),
    merchant: str = typer.Option(..., "--merchant", help="the merchant the card belongs to"),
    why: str = typer.Option(..., "--why", help="reason, kept in the audit log"),
) -> None:
    """Erase one card record (audited). Run rotate-kek afterwards to crypto-shred it.

    Cards the engine knows are erased by deleting the card in the engine, which also
    marks its row deleted; this command is for records the engine no longer refers to."""
    settings = state(ctx).settings
    _with_vault(settings, lambda v: v.delete(token, merchant, who=_operator(), why=why))
    emit(ctx, "Erased", [{"token": token, "merchant": merchant}])


@vault_app.command("sweep-orphans")
def sweep_orphans(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="count the orphans, erase nothing"),
    grace_minutes: int | None = typer.Option(
        None,
        "--grace-minutes",
        min=10,
        help="only records older than this (default: vault.orphan_grace_minutes)",
    ),
) -> None:
    """Erase the vault records no card of this engine refers to (the engine also does it
    every vault.sweep_interval_minutes): cards stored by calls that never finished, or
    deleted cards whose erase failed; with a PG account set (gateway.api_key, or the
    V2 api_secret), the billing keys such calls left at the PG go too. Records of
    merchants unknown to this engine's database are left alone."""
    settings = state(ctx).settings
    grace = timedelta(minutes=grace_minutes or settings.vault.orphan_grace_minutes)

    async def go() -> SweepReport:
        async with contextlib.AsyncExitStack() as stack:
            pg = None
            if gateway_configured(settings.gateway) and not dry_run:
                pg = await stack.enter_async_context(build_gateway(settings.gateway))
            services = build(settings)
            stack.push_async_callback(services.close)
            vault = await open_vault_client(settings)
            stack.push_async_callback(vault.close)
            sweep = OrphanSweep(services.db, vault, services.clock, grace=grace, gateway=pg)
            return await sweep.sweep(dry_run=dry_run)

    report = run(go())
    emit(ctx, "Orphan sweep" + (" (dry run)" if dry_run else ""), [{
        "checked": report.checked, "orphans": report.orphans, "erased": report.erased,
        "billing_keys_deleted": report.keys_deleted, "other_merchants": report.foreign,
        "failed": report.failed,
    }])  # fmt: skip
    if report.failed:
        raise typer.Exit(1)


@vault_app.command("serve")
def serve(ctx: typer.Context) -> None:
    """Run the vault service on its Unix socket (vault.socket) until stopped. Peers are
    admitted by uid/gid (vault.engine_uids, engine_gids, admin_uids, admin_gids), each
    role to its operations; at most vault.max_connections at once.

    Card forwarding (billing keys, keyed charges) goes to the configured PG
    (gateway.*) when a PG account is set (gateway.api_key; kind portone_v2:
    gateway.api_secret); without it those calls are refused with
    vault-gateway-not-configured. A call naming another PG account (a route) is
    forwarded only to a host on vault.gateway_hosts (HTTPS unless loopback)."""
    settings = state(ctx).settings
    logging.basicConfig(
        level=settings.log.level.upper(), stream=sys.stderr, format="%(asctime)s %(message)s"
    )
    # No core file of the process that holds keys and decrypted cards.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    async def go() -> None:
        async with contextlib.AsyncExitStack() as stack:
            # Forwarding needs the PG connector inside the vault: the card never leaves it.
            pg = None
            if gateway_configured(settings.gateway):
                pg = await stack.enter_async_context(build_gateway(settings.gateway))
            # The vault closes the gateways built for routes when it closes.
            card_gateway = card_gateway_of(settings, pg)
            vault = await open_vault(settings, gateway=card_gateway)
            stack.push_async_callback(vault.close)
            v = settings.vault
            policy = PeerPolicy.from_settings(v)
            server = VaultServer(
                vault,
                v.socket,
                max_frame_bytes=v.max_frame_bytes,
                policy=policy,
                max_connections=v.max_connections,
                handshake_timeout_s=v.handshake_timeout_s,
                idle_timeout_s=v.idle_timeout_s,
            )
            stack.push_async_callback(server.close)
            checkpoints = asyncio.create_task(
                vault.run_audit_checkpoints(
                    audit_checkpoints(settings),
                    settings.vault.audit_checkpoint_interval_minutes * 60.0,
                ),
                name="vault-audit-checkpoints",
            )
            stack.push_async_callback(_cancel, checkpoints)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await server.start()
            forwarding = f"gateway {settings.gateway.kind}" if pg else "no gateway configured"
            hosts = ", ".join(settings.vault.gateway_hosts) or "none"
            typer.echo(
                f"vault serving on {settings.vault.socket} "
                f"({database_url_kind(settings)}, {forwarding}, routes to: {hosts}; "
                f"engine role: {_holders(policy.engine_uids, policy.engine_gids)}; "
                f"admin role: {_holders(policy.admin_uids, policy.admin_gids)})"
            )
            await stop.wait()

    run(go())


def _holders(uids: frozenset[int], gids: frozenset[int]) -> str:
    named = [f"uid {u}" for u in sorted(uids)] + [f"gid {g}" for g in sorted(gids)]
    return ", ".join(named) or "nobody"


def database_url_kind(settings: Settings) -> str:
    return database_url(settings).split(":", 1)[0]


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
