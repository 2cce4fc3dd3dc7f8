"""``arspay cards migrate`` and ``arspay cards migrations``: a merchant's stored cards
moved to another PG account (ivr/pg_accounts/migration.py), with a progress bar on a
terminal and a plain line now and then otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
from rich.progress import Progress as Bar

from ivr.cli.app import emit, run, state
from ivr.cli.engine_cmd import cards_app
from ivr.pg_accounts.migration import CardMigrator, Progress
from ivr.pg_accounts.migration_store import BatchView, MigrationStore
from ivr.pg_accounts.model import account_key
from ivr.runtime import build, open_runtime


class Lines:
    """Without a terminal: one line at the start, every ``every`` seconds, and at the end."""

    def __init__(self, out: TextIO, every: float = 5.0) -> None:
        self.out, self.every, self.last = out, every, 0.0

    def __call__(self, p: Progress, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and self.last and now - self.last < self.every:
            return
        self.last = now
        self.out.write(f"migrated {p.ended}/{p.total}: done {p.done}, failed {p.failed}, "
                       f"needs payer {p.needs_payer}, open {p.open}\n")  # fmt: skip
        self.out.flush()


def _row(b: BatchView) -> dict[str, Any]:
    c = b.counts
    return {"id": b.id, "merchant": b.merchant_id, "to": b.to_account, "status": b.status,
            "total": b.total, "done": c.get("done", 0), "failed": c.get("failed", 0),
            "needs_payer": c.get("needs_payer", 0),
            "open": sum(c.get(s, 0) for s in ("pending", "issued", "switched")),
            "created_at": b.created_at}  # fmt: skip


@cards_app.command("migrate")
def cards_migrate(
    ctx: typer.Context,
    merchant: str = typer.Option(..., "--merchant", help="the merchant whose cards move"),
    to: str = typer.Option(..., "--to", help="the PG account they move to ('default': [gateway])"),
    concurrency: int = typer.Option(16, "--concurrency", min=1, max=256, help="cards at once"),
    dry_run: bool = typer.Option(False, "--dry-run", help="count the cards, move none"),
) -> None:
    """Re-issue the merchant's stored cards' billing keys at another PG account, without
    the payers (the card password is never stored: a PG that requires it leaves the
    card 'needs payer'), switch each card, delete its old key. Running it again resumes
    the batch; each card moves once."""
    settings = state(ctx).settings

    async def go() -> list[dict[str, Any]]:
        rt = await open_runtime(settings)
        m = rt.migrations
        m.concurrency = concurrency
        try:
            if dry_run:
                n = await m.preview(merchant, to)
                return [{"merchant": merchant, "to": account_key(to), "would_move": n}]
            batch = await m.start(merchant, to, actor="cli")
            typer.echo(f"card migration {batch.id} to {batch.to_account}: "
                       f"{batch.total} card(s)", err=True)  # fmt: skip
            if sys.stderr.isatty():
                with Bar("[progress.description]{task.description}", BarColumn(),
                         MofNCompleteColumn(), TimeElapsedColumn(),
                         "{task.fields[note]}") as bar:  # fmt: skip
                    task = bar.add_task("migrating", total=batch.total, note="")

                    def show(p: Progress) -> None:
                        note = f"failed {p.failed} · needs payer {p.needs_payer}"
                        bar.update(task, completed=p.ended, total=p.total, note=note)

                    await m.run(batch.id, actor="cli", progress=show)
            else:
                lines = Lines(sys.stderr)
                final = await m.run(batch.id, actor="cli", progress=lines)
                lines(final, final=True)
            return [_row(await m.store.batch(batch.id))]
        finally:
            await rt.close()

    emit(ctx, "card migration", run(go()))


@cards_app.command("migrations")
def cards_migrations(
    ctx: typer.Context,
    merchant: str | None = typer.Option(None, "--merchant", help="one merchant's batches"),
) -> None:
    """Card migration batches, newest first, with their cards by status."""
    settings = state(ctx).settings

    async def go() -> list[dict[str, Any]]:
        services = build(settings)
        try:
            store = MigrationStore(services.db, services.clock, lease=CardMigrator.LEASE)
            return [_row(b) for b in await store.batches(merchant)]
        finally:
            await services.close()

    emit(ctx, "card migrations", run(go()))
