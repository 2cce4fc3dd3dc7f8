"""``arspay asterisk``: generate the link credentials, render the Asterisk configuration,
check that ARI answers."""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import typer

from ivr.cli.app import app, emit, state
from ivr.errors import ConfigError
from ivr.settings import Settings
from ivr.telephony import credentials
from ivr.telephony.asterisk_config import write

asterisk_app = typer.Typer(help="The Asterisk PBX.", no_args_is_help=True)
app.add_typer(asterisk_app, name="asterisk")


def _ensure_credentials(settings: Settings) -> bool:
    """Generate the credentials file unless the configuration sets both values or the
    file exists; True when it was created."""
    if credentials.explicit(settings):
        return False
    return credentials.generate(credentials.credentials_path(settings))


@asterisk_app.command("credentials")
def credentials_cmd(
    ctx: typer.Context,
    rotate: bool = typer.Option(
        False, "--rotate", help="replace them (then render, restart Asterisk and the engine)"
    ),
) -> None:
    """Generate the ARI password and the FastAGI secret (random, 0600 file at
    asterisk.credentials_file) that the rendered config and the engine share, unless
    present. Never prints them."""
    settings = state(ctx).settings
    path = credentials.credentials_path(settings)
    if credentials.explicit(settings):
        if rotate:
            raise ConfigError(
                "asterisk.ari_password and asterisk.agi_secret are set in the configuration: "
                "change them there"
            )
        status = "set in the configuration (file not used)"
    elif rotate:
        credentials.generate(path, rotate=True)
        status = "rotated"
    else:
        status = "created" if credentials.generate(path) else "kept"
    emit(ctx, "Telephony credentials", [{"file": str(path), "status": status}])


@asterisk_app.command("render")
def render(
    ctx: typer.Context,
    out: Path | None = typer.Option(
        None, "--out", help="directory to write into [default: <var_dir>/asterisk/etc]"
    ),
) -> None:
    """Write the Asterisk configuration (asterisk-config/*.conf) filled from the settings
    and the link credentials (generated first if there are none)."""
    settings = state(ctx).settings
    _ensure_credentials(settings)
    paths = write(settings, out or settings.paths.var_dir / "asterisk" / "etc")
    if state(ctx).json:
        sys.stdout.write(json.dumps([str(p) for p in paths]) + "\n")
    else:
        for p in paths:
            typer.echo(p)


def _ari_info(url: str, user: str, password: str) -> dict[str, object]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    # The URL is asterisk.ari_url from the settings (http only, see asterisk_config).
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=3) as resp:  # noqa: S310
        body = json.loads(resp.read())
    assert isinstance(body, dict)
    return body


@asterisk_app.command("ping")
def ping(
    ctx: typer.Context,
    timeout: float = typer.Option(0.0, help="keep trying this many seconds"),
) -> None:
    """Check that ARI answers with the configured user and password; print the version."""
    settings = state(ctx).settings
    a = settings.asterisk
    password = credentials.resolve(settings).ari_password.get_secret_value()
    url = a.ari_url.rstrip("/") + "/ari/asterisk/info"
    deadline = time.monotonic() + timeout
    while True:
        try:
            info = _ari_info(url, a.ari_user, password)
            break
        except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
            if time.monotonic() >= deadline:
                typer.echo(f"error: ARI at {a.ari_url} does not answer: {exc}", err=True)
                raise typer.Exit(1) from None
            time.sleep(0.2)
    system = info.get("system")
    version = system.get("version") if isinstance(system, dict) else None
    typer.echo(f"ARI answers at {a.ari_url}: Asterisk {version}")
