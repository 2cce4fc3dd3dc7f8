"""``arspay config``: show the effective configuration (secrets masked)."""

from __future__ import annotations

import typer

from ivr.cli.app import app, state
from ivr.settings import render

config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the effective configuration as TOML, secrets masked."""
    typer.echo(render(state(ctx).settings))
