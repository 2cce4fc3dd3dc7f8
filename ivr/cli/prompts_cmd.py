"""``arspay prompts``: build the voice prompts, list them, try one out."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.console import Console

from ivr.cli.app import app, emit, run, state
from ivr.errors import InvalidInput
from ivr.prompts import BuildReport, PromptBook
from ivr.prompts.slots import SLOTS, SlotKind

prompts_app = typer.Typer(
    help="Voice prompts: prompts/manifest → 8 kHz WAVs Asterisk plays as arspay/NAME.",
    no_args_is_help=True,
)
app.add_typer(prompts_app, name="prompts")


def _book(ctx: typer.Context) -> PromptBook:
    return PromptBook.from_settings(state(ctx).settings.prompts)


@prompts_app.command("build")
def build(
    ctx: typer.Context,
    ids: list[str] | None = typer.Argument(
        None, help="only these prompt ids (number and digit segments are always built)"
    ),
) -> None:
    """Generate every prompt's audio (espeak-ng, sox); unchanged segments are skipped and
    recordings in prompts/recorded/ override generated speech."""

    async def go() -> BuildReport:
        return await _book(ctx).build(ids or None)

    report = run(go())
    if state(ctx).json:
        row = asdict(report)
        row.update(total=report.total, sounds_dir=str(report.sounds_dir),
                   unmatched_recordings=list(report.unmatched_recordings))  # fmt: skip
        emit(ctx, "", [row])
        return
    typer.echo(
        f"{report.total} segments in {report.sounds_dir}: {report.built} built, "
        f"{report.recorded} from recordings, {report.cached} unchanged "
        f"({report.overrides} recorded overrides in use) in {report.seconds:.1f} s"
    )
    for name in report.unmatched_recordings:
        Console(stderr=True).print(
            f"[yellow]warning:[/yellow] recording {name}.wav matches no segment", highlight=False
        )


@prompts_app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every prompt id and its Korean text."""

    async def go() -> PromptBook:
        return _book(ctx)

    book = run(go())
    emit(ctx, "Prompts", [{"id": i, "text": book.template(i)} for i in sorted(book.ids)])


def _values(pairs: list[str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput("values are given as key=value (e.g. amount=53000)")
        if SLOTS.get(key) is SlotKind.number:
            try:
                values[key] = int(value.replace(",", ""))
                continue
            except ValueError:
                pass  # the book says what it wants
        values[key] = value
    return values


@prompts_app.command("say")
def say(
    ctx: typer.Context,
    prompt_id: str = typer.Argument(..., help="e.g. pay.details"),
    pairs: list[str] | None = typer.Argument(None, help="values: product=임플란트 amount=53000"),
) -> None:
    """Print a prompt's text with values filled in, make its audio, print the sound names."""

    async def go() -> tuple[str, list[str]]:
        book = _book(ctx)
        values = _values(pairs or [])
        text = book.text(prompt_id, **values)
        return text, await book.render(prompt_id, **values)

    text, sounds = run(go())
    if state(ctx).json:
        emit(ctx, "", [{"id": prompt_id, "text": text, "sounds": sounds}])
        return
    typer.echo(text)
    for sound in sounds:
        typer.echo(sound)
