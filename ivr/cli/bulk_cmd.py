"""``arspay bulk``: submit a file of charges, follow its progress, get the results."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from ivr.cli.app import app, emit, run, state
from ivr.runtime import Runtime, open_runtime

bulk_app = typer.Typer(help="Bulk charges (CSV or JSON).", no_args_is_help=True)
app.add_typer(bulk_app, name="bulk")


class _NoPrompts:
    """Bulk work plays no prompts: the runtime gets a book that refuses to."""

    def has(self, prompt_id: str) -> bool:
        return False

    def text(self, prompt_id: str, **values: Any) -> str:
        raise RuntimeError("no prompts in bulk processing")

    async def render(self, prompt_id: str, **values: Any) -> list[str]:
        raise RuntimeError("no prompts in bulk processing")

    def sha256(self, sound_name: str) -> str:
        raise RuntimeError("no prompts in bulk processing")


async def _with_runtime(ctx: typer.Context, body: Any) -> Any:
    runtime = await open_runtime(state(ctx).settings, book=_NoPrompts())
    try:
        return await body(runtime)
    finally:
        await runtime.close()


@bulk_app.command("submit")
def submit(
    ctx: typer.Context,
    merchant_id: str,
    file: Path,
    fmt: str | None = typer.Option(None, "--format", help="csv | json (default: by extension)"),
    follow: bool = typer.Option(False, "--follow", help="show a progress bar until done"),
    here: bool = typer.Option(False, "--here", help="process in this process (no engine running)"),
    kind: str = typer.Option(
        "charges", "--kind", help="charges | registrations (registration call requests)"
    ),
) -> None:
    """Submit charges (columns card_id, amount, order_name[, installment_months][, ref])
    or registrations (customer_id, or mobile[, name][, external_ref]; [product_name],
    [lease_minutes], [ref]). Invalid rows are listed; valid rows are processed exactly
    once each."""
    file_format = fmt or file.suffix.lstrip(".").lower()
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"{file}: {exc.strerror}") from None

    async def body(rt: Runtime) -> dict[str, Any]:
        sub = await rt.bulk.submissions.submit(
            merchant_id, data, file_format, actor="cli", kind=kind
        )
        typer.echo(
            f"bulk job {sub.bulk_id}: {sub.valid} valid row(s), {len(sub.invalid)} invalid",
            err=True,
        )
        for bad in sub.invalid[:20]:
            typer.echo(f"  row {bad['row']}: {bad['error']}", err=True)
        if follow or here:
            with Progress(
                "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), transient=False,
            ) as bar:  # fmt: skip
                task = bar.add_task(
                    "charging" if kind == "charges" else "requesting", total=sub.valid
                )
                while True:
                    if here:
                        await rt.bulk.charges.run_once()
                        await rt.bulk.registrations.run_once()
                    p = await rt.bulk.jobs.progress(merchant_id, sub.bulk_id)
                    bar.update(task, completed=p["processed"])
                    if p["pending"] == 0:
                        break
                    if not here:
                        await asyncio.sleep(0.5)
        return await rt.bulk.jobs.progress(merchant_id, sub.bulk_id)

    emit(ctx, "bulk job", [run(_with_runtime(ctx, body))])


@bulk_app.command("status")
def status(ctx: typer.Context, merchant_id: str, bulk_id: str) -> None:
    """Progress of a bulk job."""

    async def body(rt: Runtime) -> dict[str, Any]:
        return await rt.bulk.jobs.progress(merchant_id, bulk_id)

    emit(ctx, "bulk job", [run(_with_runtime(ctx, body))])


@bulk_app.command("results")
def results(
    ctx: typer.Context,
    merchant_id: str,
    bulk_id: str,
    out: Path | None = typer.Option(None, "--out", help="write the result CSV here"),
) -> None:
    """Per-row results (the result file)."""

    async def body(rt: Runtime) -> list[dict[str, Any]]:
        return await rt.bulk.results.rows(merchant_id, bulk_id)

    rows = run(_with_runtime(ctx, body))
    if out is not None:
        from ivr.bulk.results import results_csv

        out.write_text(results_csv(rows), encoding="utf-8")
        typer.echo(f"{len(rows)} row(s) written to {out}")
    else:
        emit(ctx, "results", rows)
