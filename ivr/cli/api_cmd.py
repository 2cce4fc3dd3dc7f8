"""``arspay api openapi``: the REST API's OpenAPI document (checked in as
docs/openapi.json; a test fails when it drifts from the code)."""

from __future__ import annotations

from pathlib import Path

import typer

from ivr.cli.app import app

api_app = typer.Typer(help="The merchant REST API (served by `arspay engine run`).")
app.add_typer(api_app, name="api", no_args_is_help=True)


@api_app.command("openapi")
def openapi(
    out: Path | None = typer.Option(None, "--out", "-o", help="write here instead of stdout"),
) -> None:
    """Print (or write) the OpenAPI document."""
    from ivr.api.app import openapi_document
    from ivr.web.app import create_app

    text = openapi_document(create_app(None))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")
