"""``arspay backup``: create, verify and restore archives of the engine's and the
vault's databases (docs/backup.md).

No key file ever goes into an archive, and these commands print no card data: the
restore's decrypt sample reports a count.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from ivr.backup.checks import check_restored
from ivr.backup.create import create_backup
from ivr.backup.restore import Target, restore_backup
from ivr.backup.verify import verify_archive
from ivr.cli.app import app, run, state
from ivr.cli.evidence import report

backup_app = typer.Typer(help="Backups of the databases.", no_args_is_help=True)
app.add_typer(backup_app, name="backup")


@backup_app.command("create")
def create(
    ctx: typer.Context,
    out: Path = typer.Argument(..., help="the archive to write (mode 0600)"),
    compress: str = typer.Option("gz", "--compress", help="gz or none"),
    force: bool = typer.Option(False, "--force", help="replace an existing file"),
) -> None:
    """Snapshot the engine's and the vault's databases (online) into one archive with a
    manifest; no key file goes in."""
    if compress not in ("gz", "none"):
        raise typer.BadParameter("gz or none", param_hint="--compress")
    settings = state(ctx).settings
    m = run(create_backup(settings, out, compression="gz" if compress == "gz" else "none",
                          force=force))  # fmt: skip
    rows = sum(m.engine.tables.values()) + sum(m.vault.tables.values())
    report(ctx, ok=True, problems=[],
           summary=f"wrote {out}: engine {m.engine.dialect} at {m.engine.revision}, vault "
                   f"{m.vault.dialect} schema {m.vault.revision}, {rows} row(s); needs KEK(s) "
                   f"{', '.join(m.kek_ids) or '(none)'}",
           data={"archive": str(out), "created_at": m.created_at.isoformat(),
                 "engine_revision": m.engine.revision, "kek_ids": list(m.kek_ids),
                 "rows": rows})  # fmt: skip


@backup_app.command("verify")
def verify(
    ctx: typer.Context, archive: Path = typer.Argument(..., help="the archive to check")
) -> None:
    """Check an archive without restoring it: member hashes, SQLite integrity, rows as
    in the manifest, revisions this release knows. Exit 1 on any problem."""
    with tempfile.TemporaryDirectory(prefix="arspay-verify-") as scratch:
        r = run(verify_archive(archive, Path(scratch)))
    m = r.manifest
    summary = (f"{archive}: intact (made {m.created_at.isoformat()} by arspay "
               f"{m.arspay_version}; engine at {m.engine.revision}; needs KEK(s) "
               f"{', '.join(m.kek_ids) or '(none)'})" if r.ok
               else f"{archive}: DAMAGED or unreadable: {len(r.problems)} problem(s)")  # fmt: skip
    report(ctx, ok=r.ok, summary=summary, problems=r.problems, notes=r.notes,
           data={"archive": str(archive), "engine_revision": m.engine.revision,
                 "kek_ids": list(m.kek_ids), "keys_needed": list(m.keys_needed)})  # fmt: skip


@backup_app.command("restore")
def restore(
    ctx: typer.Context,
    archive: Path = typer.Argument(..., help="the archive to restore"),
    target: Path = typer.Argument(..., help="a new or empty directory (a var_dir)"),
    database_url: str = typer.Option(
        "", "--database-url", help="PostgreSQL dump: the empty database to restore into"
    ),
    vault_database_url: str = typer.Option(
        "", "--vault-database-url", help="the vault's PostgreSQL dump: its empty database"
    ),
    force: bool = typer.Option(
        False, "--force", help="restore into a non-empty target (never the live databases)"
    ),
    sample: int = typer.Option(5, "--sample", min=0, help="card records to test-decrypt"),
    check: bool = typer.Option(True, "--check/--no-check", help="check the restored system"),
) -> None:
    """Verify an archive, restore it into TARGET (never over the live system), then
    check the restored system with the configured keys: rows, db check, consent
    verify, vault KEK ids, audit log and a decrypt sample. Exit 1 if a check fails."""
    settings = state(ctx).settings
    where = Target(target, database_url, vault_database_url)

    async def go() -> tuple[list[str], list[str]]:
        manifest, restored = await restore_backup(settings, archive, where, force=force)
        if not check:
            return [], []
        checks = await check_restored(restored, manifest, sample=sample)
        lines = [f"{c.name}: {'ok' if c.ok else 'FAILED'} ({c.detail})" for c in checks]
        return lines, [f"{c.name}: {c.detail}" for c in checks if not c.ok]

    lines, problems = run(go())
    for line in lines if not state(ctx).json else []:
        typer.echo(line)
    ok = not problems
    summary = (f"restored into {target} (settings: {target / 'restored.toml'})" if ok
               else f"restored into {target}; the restored system FAILED a check")  # fmt: skip
    report(ctx, ok=ok, summary=summary, problems=problems,
           data={"target": str(target), "checks": lines})  # fmt: skip
