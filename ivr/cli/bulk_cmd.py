"""``arspay bulk``: submit a file of charges or registrations (CSV, .xlsx, JSON), follow
its progress, get the results, write a template."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from ivr.bulk.files import format_of
from ivr.cli.app import app, emit, run, state
from ivr.runtime import Runtime, open_runtime

bulk_app = typer.Typer(
    help="Bulk charges and registrations (CSV, .xlsx or JSON).", no_args_is_help=True
)
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
    fmt: str | None = typer.Option(
        None, "--format", help="csv | xlsx | json (default: by extension, else csv)"
    ),
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
    file_format = fmt or format_of(file.name)
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
    out: Path | None = typer.Option(
        None,
        "--out",
        help="write the result file here (.xlsx: a workbook, else CSV in "
        "the uploaded file's encoding)",
    ),
) -> None:
    """Per-row results (the result file)."""
    from ivr.bulk.files import Source
    from ivr.bulk.results import result_file

    async def body(rt: Runtime) -> tuple[list[dict[str, Any]], Source]:
        rows = await rt.bulk.results.rows(merchant_id, bulk_id)
        return rows, await rt.bulk.results.source(merchant_id, bulk_id)

    rows, source = run(_with_runtime(ctx, body))
    if out is not None:
        fmt = "xlsx" if format_of(out.name) == "xlsx" else "csv"
        out.write_bytes(result_file(rows, source, fmt).body)
        typer.echo(f"{len(rows)} row(s) written to {out}")
    else:
        emit(ctx, "results", rows)


@bulk_app.command("template")
def write_template(
    kind: str = typer.Argument(..., help="charges | registrations"),
    out: Path = typer.Option(..., "--out", help="the file to write: .xlsx, else CSV"),
) -> None:
    """Write the template of a bulk kind (its header row) to fill in and submit."""
    from ivr.bulk.templates import template
    from ivr.errors import InvalidInput

    try:
        file = template(kind, "xlsx" if format_of(out.name) == "xlsx" else "csv")
    except InvalidInput as exc:
        raise typer.BadParameter(exc.message) from None
    out.write_bytes(file.body)
    typer.echo(f"{kind} template written to {out}")
