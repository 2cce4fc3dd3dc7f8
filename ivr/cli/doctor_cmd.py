"""``arspay doctor``: check this deployment; one line per check (ok, warn, fail, skip)
with how to fix it; exit 1 when a check fails."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import typer

from ivr.cli.app import app, state
from ivr.doctor.asterisk import DEFAULT_DIR
from ivr.doctor.report import failed
from ivr.doctor.run import Options, ProcessRole, run_all
from ivr.settings import ENV_PREFIX


def config_path(given: Path | None) -> Path | None:
    """The file the settings come from: --config, else ARSPAY_CONFIG or ./arspay.toml
    when it exists."""
    if given is not None:
        return given
    path = Path(os.environ.get(ENV_PREFIX + "CONFIG", "arspay.toml"))
    return path if path.exists() else None


@app.command("doctor")
def doctor(
    ctx: typer.Context,
    role: ProcessRole = typer.Option(
        ProcessRole.ENGINE,
        "--role",
        help="what this configuration runs: engine (arspay engine run) or vault "
        "(arspay vault serve: its keys, its database, the clock)",
    ),
    asterisk_dir: Path = typer.Option(
        DEFAULT_DIR, "--asterisk-dir", help="where the Asterisk config is deployed"
    ),
    ari_timeout: float = typer.Option(2.0, "--ari-timeout", min=0.1, help="seconds"),
) -> None:
    """Check this deployment: key-file permissions, the configuration, migrations, the
    Asterisk config against `arspay asterisk render`, ARI, the clock and time zone, the
    SMS sender number. Says how to fix each problem; exits 1 if a check fails. Changes
    nothing. On the vault's host: arspay -c /etc/arspay/vault.toml doctor --role vault."""
    options = Options(
        role=role,
        config_path=config_path(state(ctx).config),
        asterisk_dir=asterisk_dir,
        ari_timeout_s=ari_timeout,
    )
    findings = asyncio.run(run_all(options))
    if state(ctx).json:
        rows = [asdict(f) | {"status": f.status.value} for f in findings]
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
    else:
        for finding in findings:
            typer.echo(finding.line())
        bad = sum(f.status == "fail" for f in findings)
        warned = sum(f.status == "warn" for f in findings)
        typer.echo(f"{len(findings)} checks: {bad} failed, {warned} warnings")
    if failed(findings):
        raise typer.Exit(1)
