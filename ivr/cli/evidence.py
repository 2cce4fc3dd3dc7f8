"""What ``arspay consent`` and ``arspay vault audit-*`` share: reading checkpoint files,
printing a verification (one line per problem, never key material) with its exit
status, and writing a document to a file or stdout.

Exit status of the verify commands: 0 — the chain verifies and agrees with every
checkpoint; 1 — a problem was found (a record that does not fit, a checkpoint refused
or contradicted); 2 — it could not be checked (a missing key file, bad options).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from ivr.cli.app import state
from vault.errors import CheckpointRefused
from vault.evidence import Checkpoint, CheckpointDir, EvidenceKey

CHECKPOINT_OPTION = typer.Option(
    None,
    "--checkpoint",
    exists=True,
    dir_okay=False,
    readable=True,
    help="a checkpoint file to compare with (repeatable)",
)
OUT_OPTION = typer.Option(None, "--out", "-o", dir_okay=False, help="write here, not to stdout")


def saved_option(directory: str) -> Any:
    """``--saved/--no-saved``: also check the newest checkpoint kept in ``directory``
    (the setting's name, for the help text)."""
    return typer.Option(
        True, "--saved/--no-saved", help=f"also the newest checkpoint in {directory}"
    )


Labelled = list[tuple[str, Checkpoint]]


def read_checkpoints(paths: Sequence[Path] | None) -> tuple[Labelled, list[str]]:
    """The checkpoints that parse, and a problem line for each file that does not."""
    found: Labelled = []
    refused: list[str] = []
    for path in paths or ():
        try:
            found.append((str(path), Checkpoint.parse(path.read_bytes())))
        except OSError as exc:
            refused.append(f"checkpoint {path}: unreadable ({exc.strerror})")
        except CheckpointRefused as exc:
            refused.append(f"checkpoint {path}: refused: {exc.message}")
    return found, refused


def newest_saved(saved: CheckpointDir, key: EvidenceKey) -> tuple[Labelled, list[str]]:
    """The newest checkpoint in the directory this key signed, and a problem line for
    each newer file there that is not one (altered, forged, another deployment's)."""
    found, skipped = saved.newest(key)
    return ([(str(found[0]), found[1])] if found is not None else []), skipped


def report(
    ctx: typer.Context,
    *,
    ok: bool,
    summary: str,
    problems: Sequence[str],
    notes: Sequence[str] = (),
    data: dict[str, Any],
) -> None:
    """Print the result (``--json``: one object) and exit 1 if there is a problem."""
    if state(ctx).json:
        body = data | {"ok": ok, "problems": list(problems), "notes": list(notes)}
        sys.stdout.write(json.dumps(body, ensure_ascii=False) + "\n")
    else:
        typer.echo(summary)
        for line in problems:
            typer.echo(f"problem: {line}")
        for line in notes:
            typer.echo(f"note: {line}")
    if not ok:
        raise typer.Exit(1)


def write_document(text: str, out: Path | None) -> None:
    """``text`` to ``out`` (written whole, mode 0644: a checkpoint or public key is no
    secret) or to stdout."""
    if out is None:
        sys.stdout.write(text)
        return
    tmp = out.with_name(f".{out.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out)


def document(value: dict[str, Any]) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False) + "\n"
