"""The root ``arspay`` Typer app, its global options and the helpers commands share.

Commands never print tracebacks for expected errors: an :class:`~ivr.errors.ArspayError`
becomes ``error: <message>`` on stderr and exit status 2.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from ivr import __version__
from ivr.cli.output import emit_rows
from ivr.errors import ArspayError
from ivr.runtime import build
from ivr.settings import Settings, load_settings
from ivr.wiring import Services

T = TypeVar("T")

app = typer.Typer(
    name="arspay",
    help="ARS (IVR) automatic card payment engine on Asterisk.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class CliState:
    config: Path | None = None
    json: bool = False
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", help="path of arspay.toml"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    ctx.obj = CliState(config=config, json=as_json)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``engine.event_loop`` names: uvloop's (libuv; the engine's default:
    a shorter ARI turnaround tail, p99 3.7/2.9 -> 2.6/2.5 ms in an A/B at 20 calls, issue
    #10), or None for asyncio's own — also where uvloop is not installed (it is optional
    at run time)."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            return None
        return uvloop.new_event_loop
    return None


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which event loop runs (printed when the engine is ready)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def fields(row: object, *names: str) -> dict[str, Any]:
    """The named attributes of ``row``, in that order: one record for :func:`emit`."""
    return {name: getattr(row, name) for name in names}


def run(coro: Coroutine[Any, Any, T], *, event_loop: str = "asyncio") -> T:
    """Run one coroutine on the named event loop (``engine.event_loop``), turning expected
    errors into a clean message and exit 2."""
    try:
        with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
            return runner.run(coro)
    except ArspayError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(2) from None


def with_services(ctx: typer.Context, body: Callable[[Services], Awaitable[T]]) -> T:
    """Build the services from settings, run ``body``, close them."""
    st = state(ctx)

    async def _go() -> T:
        services = build(st.settings)
        try:
            return await body(services)
        finally:
            await services.close()

    try:
        return run(_go())
    except ArspayError as exc:  # raised while building (config)
        Console(stderr=True).print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(2) from None


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def emit(ctx: typer.Context, title: str, rows: list[dict[str, Any]]) -> None:
    """Print rows for a person (:mod:`ivr.cli.output`: one record as a key–value block,
    several as a table when it fits the width, else as blocks), or as JSON with ``--json``."""
    if state(ctx).json:
        sys.stdout.write(
            json.dumps([{k: _plain(v) for k, v in r.items()} for r in rows], ensure_ascii=False)
            + "\n"
        )
        return
    emit_rows(title, rows)


def main() -> None:
    try:
        app()
    except ArspayError as exc:  # settings loaded lazily inside a command
        Console(stderr=True).print(f"[red]error:[/red] {exc.message}", highlight=False)
        sys.exit(2)
