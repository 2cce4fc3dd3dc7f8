"""``arspay sandbox-pg`` (run the sandbox PG) and ``arspay gateway`` (ask the PG)."""

from __future__ import annotations

from pathlib import Path

import typer

from ivr.cli.app import app, emit, run, state
from ivr.errors import ArspayError
from ivr.gateways.factory import build_gateway
from ivr.gateways.sandbox.config import SandboxConfig, parse_faults
from ivr.gateways.sandbox.server import serve

gateway_app = typer.Typer(help="The payment gateway (PortOne v1 or the sandbox PG).",
                          no_args_is_help=True)  # fmt: skip
app.add_typer(gateway_app, name="gateway")


@app.command("sandbox-pg")
def sandbox_pg(
    ctx: typer.Context,
    host: str | None = typer.Option(None, help="listen address (gateway.sandbox_host)"),
    port: int | None = typer.Option(None, help="port, 0 = any free one (gateway.sandbox_port)"),
    latency_ms: int | None = typer.Option(None, help="added latency (gateway.sandbox_latency_ms)"),
    error_rate: float | None = typer.Option(None, help="share of payment calls answered 500"),
    timeout_rate: float | None = typer.Option(
        None, help="share of new charges dropped after recording"
    ),
    hang_ms: int | None = typer.Option(None, help="hang this long before a drop"),
    ledger: Path | None = typer.Option(None, help="SQLite ledger file (gateway.sandbox_ledger)"),
    seed: int | None = typer.Option(None, help="seed for reproducible fault injection"),
    faults: str | None = typer.Option(
        None,
        help="orderings by probability, comma-separated endpoint:ordering:probability"
        "[:delay_ms], e.g. charge:late:0.1:3000 (gateway.sandbox_faults)",
    ),
) -> None:
    """Run the sandbox PG (PortOne v1 subset, test-card table of docs/product.md §7) until
    Ctrl-C or SIGTERM. Prints the URL it listens on."""
    gw = state(ctx).settings.gateway
    try:
        config = SandboxConfig.from_settings(
            gw, ledger_path=ledger, latency_ms=latency_ms, error_rate=error_rate,
            timeout_rate=timeout_rate, hang_ms=hang_ms, seed=seed,
            faults=None if faults is None else parse_faults(faults),
        )  # fmt: skip
    except ArspayError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None

    def ready(url: str) -> None:
        typer.echo(f"sandbox-pg listening on {url} (ledger {config.ledger_path})")

    bind_host = host or gw.sandbox_host
    try:
        run(serve(config, bind_host, gw.sandbox_port if port is None else port, ready))
    except OSError as exc:  # address in use, permission denied, bad ledger path
        typer.echo(f"error: sandbox-pg could not start: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None


@gateway_app.command("find")
def find(ctx: typer.Context, order_id: str) -> None:
    """Look an order up at the PG (its merchant_uid)."""
    settings = state(ctx).settings

    async def body() -> None:
        async with build_gateway(settings.gateway) as pg:
            found = await pg.find(order_id)
        if found is None:
            emit(ctx, "Order", [{"order_id": order_id, "state": "unknown to the PG"}])
            return
        emit(ctx, "Order", [{
            "order_id": found.order_id, "state": found.state.value, "amount": found.amount,
            "cancelled": found.cancelled_amount, "refundable": found.refundable,
            "pg_tx_id": found.pg_tx_id, "approval_no": found.approval_no,
            "card": f"{found.card_issuer or ''} {found.card_last4 or ''}".strip(),
            "decline": found.decline.reason.value if found.decline else None,
        }])  # fmt: skip

    run(body())
