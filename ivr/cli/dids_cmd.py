"""``arspay dids``: the virtual-number pool."""

from __future__ import annotations

from dataclasses import asdict

import typer

from ivr.cli.app import app, emit, with_services
from ivr.dids.numbers import parse_dids
from ivr.domain.states import DidStatus
from ivr.phone import normalize
from ivr.wiring import Services

dids_app = typer.Typer(help="The DID (virtual number) pool.", no_args_is_help=True)
app.add_typer(dids_app, name="dids")


@dids_app.command("import")
def import_(
    ctx: typer.Context,
    specs: list[str] = typer.Argument(
        ..., help="numbers, comma lists or ranges: 0505-000-0000..0505-000-0999"
    ),
) -> None:
    """Add DIDs to the pool (numbers already there are left as they are)."""

    async def body(s: Services) -> tuple[int, int]:
        numbers = parse_dids(specs)
        return len(numbers), await s.dids.import_numbers(numbers)

    total, added = with_services(ctx, body)
    typer.echo(f"{added} added, {total - added} already in the pool")


@dids_app.command("stats")
def stats(ctx: typer.Context) -> None:
    """Pool size and active leases."""

    async def body(s: Services) -> None:
        st = await s.dids.stats()
        emit(ctx, "DID pool", [asdict(st)])

    with_services(ctx, body)


@dids_app.command("leases")
def leases(
    ctx: typer.Context, mobile: str | None = typer.Option(None, help="only this mobile")
) -> None:
    """Active leases."""

    async def body(s: Services) -> None:
        rows = await s.dids.active_leases(normalize(mobile).digits if mobile else None)
        emit(ctx, "Active leases", [
            {"id": r.id, "did": normalize(r.did).display, "mobile": r.mobile,
             "purpose": r.purpose, "expires_at": r.expires_at, "request": r.call_request_id}
            for r in rows
        ])  # fmt: skip

    with_services(ctx, body)


@dids_app.command("expire")
def expire(ctx: typer.Context) -> None:
    """Mark leases past their lifetime expired (the engine does this continuously)."""
    typer.echo(f"{with_services(ctx, lambda s: s.dids.expire_due())} lease(s) expired")


@dids_app.command("disable")
def disable(ctx: typer.Context, number: str) -> None:
    """Stop leasing a DID (existing leases run to their end)."""

    async def body(s: Services) -> None:
        await s.dids.set_status(normalize(number).digits, DidStatus.disabled)

    with_services(ctx, body)


@dids_app.command("enable")
def enable(ctx: typer.Context, number: str) -> None:
    """Lease a disabled DID again."""

    async def body(s: Services) -> None:
        await s.dids.set_status(normalize(number).digits, DidStatus.active)

    with_services(ctx, body)
