"""``arspay engine run`` (the call-handling process) and ``arspay cards`` (list, delete)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from typing import Any

import typer
from sqlalchemy import select

from ivr.cli.app import app, emit, loop_name, run, state
from ivr.prompts import PromptBook
from ivr.runtime import open_runtime, open_vault_client
from ivr.store.tables import Card
from ivr.telephony.credentials import checked

engine_app = typer.Typer(
    help="The engine process (calls over ARI and FastAGI).", no_args_is_help=True
)
cards_app = typer.Typer(
    help="Registered cards (masked; the vault holds the data).", no_args_is_help=True
)
app.add_typer(engine_app, name="engine")
app.add_typer(cards_app, name="cards")

transcript_log = logging.getLogger("arspay.transcript")


def _transcript(call_id: str, line: str) -> None:
    """Prompt texts and key counts only (never digits): the operator's view of a call."""
    transcript_log.info("%s %s", call_id, line)


def settle_heap() -> None:
    """Collect the start's garbage, then freeze what is left (settings, SQLAlchemy and
    FastAPI models, the prompt book: ~130,000 objects) out of the garbage collector's
    reach. A full collection walked them all — a ~55 ms stop of the event loop, and of
    every payer waiting for a prompt then (issue #10's turnaround tail); now it walks
    only what calls allocate. Objects made before this are never collected as cycles,
    so it runs once, when the engine is ready."""
    gc.collect()
    gc.freeze()


@engine_app.command("run")
def engine_run(
    ctx: typer.Context,
    transcript: bool = typer.Option(
        False, "--transcript", help="log each call's prompts (texts) and key counts"
    ),
    build_prompts: bool = typer.Option(
        True, "--build-prompts/--no-build-prompts", help="build missing prompt audio first"
    ),
) -> None:
    """Answer calls until stopped (SIGTERM/SIGINT): possession check, registration and
    payment flows, the sweeper (lease/request expiry, charge reconciliation)."""
    settings = state(ctx).settings
    logging.basicConfig(
        level=settings.log.level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(message)s",
    )
    if transcript:
        transcript_log.setLevel(logging.INFO)

    # Before anything starts: no ARI / FastAGI link on missing or development credentials.
    checked(settings, ari=settings.asterisk.ari_enabled)
    if settings.engine.dev_mode:
        typer.echo(
            "warning: engine.dev_mode is on: the published development ARI password and "
            "FastAGI secret are accepted; never on a machine that takes real calls",
            err=True,
        )

    async def go() -> None:
        runtime = await open_runtime(settings, transcript=_transcript if transcript else None)
        try:
            if build_prompts and isinstance(runtime.book, PromptBook):
                report = await runtime.book.build()
                typer.echo(f"prompts: {report.total} segments ready ({report.built} built)")
            api = None
            if settings.api.enabled:
                from ivr.web.serve import api_worker  # FastAPI only when serving it

                api = api_worker
            engine = runtime.engine(api=api)
            task = asyncio.create_task(engine.run())
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, task.cancel)
            ready = asyncio.create_task(engine.ready.wait())
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            if ready.done():
                settle_heap()
                ari = (
                    f"ARI {settings.asterisk.ari_url} app {settings.asterisk.app}"
                    if settings.asterisk.ari_enabled
                    else "ARI off"
                )
                typer.echo(
                    f"engine ready: {ari}, FastAGI 127.0.0.1:{settings.asterisk.agi_port}"
                    + (
                        f", API http://{settings.api.host}:{settings.api.port}"
                        if settings.api.enabled
                        else ""
                    )
                    + f", event loop {loop_name(loop)}"
                )
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            await runtime.close()

    run(go(), event_loop=settings.engine.event_loop)


def _card_row(c: Card) -> dict[str, Any]:
    return {
        "id": c.id,
        "customer_id": c.customer_id,
        "card": f"{c.bin6}******{c.last4}",
        "issuer": c.issuer,
        "type": c.card_type,
        "owner": c.owner_type,
        "status": c.status,
        "created_at": c.created_at,
        "phone_locked_until": c.verify_locked_until,
    }


@cards_app.command("list")
def cards_list(
    ctx: typer.Context,
    merchant_id: str,
    customer_id: str = typer.Option("", "--customer", help="only this customer's cards"),
) -> None:
    """List a merchant's cards (BIN6 and last 4 only)."""
    settings = state(ctx).settings

    async def go() -> list[dict[str, Any]]:
        from ivr.runtime import build

        services = build(settings)
        try:
            q = select(Card).where(Card.merchant_id == merchant_id)
            if customer_id:
                q = q.where(Card.customer_id == customer_id)
            async with services.db.sessions() as s:
                return [_card_row(c) for c in await s.scalars(q.order_by(Card.created_at))]
        finally:
            await services.close()

    emit(ctx, "cards", run(go()))


@cards_app.command("delete")
def cards_delete(
    ctx: typer.Context,
    merchant_id: str,
    card_id: str,
    reason: str = typer.Option("merchant request", "--reason", help="recorded in both audit logs"),
) -> None:
    """Delete a card: it stops being charged and its vault record (the encrypted card
    data) is erased for good. Payments that used it keep their masked reference."""
    settings = state(ctx).settings

    async def go() -> dict[str, Any]:
        from ivr.cards.service import CardService
        from ivr.runtime import build

        services = build(settings)
        vault = await _vault(settings)
        try:
            card = await CardService(services.db, services.clock, vault).delete(
                merchant_id, card_id, actor="cli", why=reason
            )
            return _card_row(card)
        finally:
            await vault.close()
            await services.close()

    emit(ctx, "deleted", [run(go())])


@cards_app.command("unlock")
def cards_unlock(ctx: typer.Context, merchant_id: str, card_id: str) -> None:
    """Let a card pay by phone again: lifts the lock that too many wrong birth dates
    in payment calls put on it, and clears its failures (audited)."""
    settings = state(ctx).settings

    async def go() -> dict[str, Any]:
        from ivr.runtime import build

        services = build(settings)
        try:
            return _card_row(await services.verification.unlock(merchant_id, card_id, actor="cli"))
        finally:
            await services.close()

    emit(ctx, "unlocked", [run(go())])


async def _vault(settings: Any) -> Any:
    return await open_vault_client(settings)


payments_app = typer.Typer(help="Payments (intents and their PG attempts).", no_args_is_help=True)
app.add_typer(payments_app, name="payments")


@payments_app.command("list")
def payments_list(ctx: typer.Context, merchant_id: str) -> None:
    """A merchant's payments: amount, installments, status, order id, approval number."""
    settings = state(ctx).settings

    async def go() -> list[dict[str, Any]]:
        from ivr.runtime import build
        from ivr.store.tables import PaymentAttempt, PaymentIntent

        services = build(settings)
        try:
            async with services.db.sessions() as s:
                rows = await s.execute(
                    select(PaymentIntent, PaymentAttempt)
                    .join(PaymentAttempt, PaymentAttempt.intent_id == PaymentIntent.id)
                    .where(PaymentIntent.merchant_id == merchant_id)
                    .order_by(PaymentIntent.created_at, PaymentAttempt.created_at)
                )
                return [
                    {
                        "intent": i.id,
                        "amount": i.amount,
                        "months": i.installment_months,
                        "interest_free": i.interest_free,
                        "status": i.status,
                        "order_id": a.order_id,
                        "attempt": a.status,
                        "approval_no": a.approval_no,
                        "decline": a.decline_code,
                    }
                    for i, a in rows.all()
                ]
        finally:
            await services.close()

    emit(ctx, "payments", run(go()))
