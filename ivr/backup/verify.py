"""``arspay backup verify``: is an archive whole and readable by this release, without
restoring it?

Every member is extracted (into a private scratch directory) and hashed against the
manifest; nothing may be missing or extra. A SQLite member must pass ``PRAGMA
integrity_check`` and hold what the manifest says (revision, schema version, rows per
table, KEK ids); a PostgreSQL dump must list its contents (``pg_restore --list``). The
engine's revision must be one this release's migration chain knows, the vault's schema
version one it reads.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from ivr.backup.archive import extract, members, opened, read_manifest
from ivr.backup.manifest import DatabaseInfo, Manifest
from ivr.backup.snapshot import pg_dump_readable, sqlite_facts, sqlite_integrity
from ivr.store.migrate import alembic_config
from vault.schema import SCHEMA_VERSION


@dataclass
class VerifyReport:
    manifest: Manifest
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def revision_problems(manifest: Manifest) -> list[str]:
    out = []
    script = ScriptDirectory.from_config(alembic_config())
    try:
        known = manifest.engine.revision is not None and script.get_revision(
            manifest.engine.revision
        )
    except CommandError:
        known = False
    if not known:
        out.append(
            f"engine revision {manifest.engine.revision!r} is not in this release's "
            "migration chain (an archive from a newer arspay?)"
        )
    vault = manifest.vault.revision
    if vault is None or not vault.isdigit() or int(vault) > int(SCHEMA_VERSION):
        out.append(f"vault schema version {vault!r} is not one this release reads")
    return out


def _sqlite_problems(path: Path, db: DatabaseInfo, manifest: Manifest) -> list[str]:
    problems = [f"{path.name}: {p}" for p in sqlite_integrity(path)]
    if problems:
        return problems
    try:
        facts = sqlite_facts(path)
    except sqlite3.DatabaseError as exc:
        return [f"{path.name}: not readable ({exc})"]
    revision = facts.revision if db.role == "engine" else facts.vault_schema
    if revision != db.revision:
        problems.append(f"{path.name}: revision {revision!r}, the manifest says {db.revision!r}")
    if facts.part(db.role) != db.tables:
        problems.append(f"{path.name}: rows per table differ from the manifest")
    if db.role == "vault" and facts.kek_ids != manifest.kek_ids:
        problems.append(f"{path.name}: KEK ids differ from the manifest")
    return problems


async def verify_archive(archive: Path, into: Path) -> VerifyReport:
    """Check ``archive``, extracting its members into the directory ``into`` (the
    caller's, made 0700 if missing; they stay there for a restore)."""
    into.mkdir(mode=0o700, parents=True, exist_ok=True)  # noqa: ASYNC240
    with opened(archive) as tar:
        manifest = read_manifest(tar)
        report = VerifyReport(manifest)
        seen: set[str] = set()
        for info in members(tar):
            want = manifest.member(info.name)
            if want is None or info.name in seen:
                report.problems.append(f"{info.name}: not in the manifest")
                continue
            seen.add(info.name)
            got = extract(tar, info, into / info.name)
            if (got.sha256, got.size) != (want.sha256, want.size):
                report.problems.append(f"{info.name}: SHA-256 or size differs from the manifest")
    for m in manifest.members:
        if m.name not in seen:
            report.problems.append(f"{m.name}: missing from the archive")
    report.problems += revision_problems(manifest)
    if report.problems:
        return report
    for db in (manifest.engine, manifest.vault):
        path = into / db.member
        if db.dialect == "sqlite":
            report.problems += _sqlite_problems(path, db, manifest)
        elif db.role == "engine" or db.member != manifest.engine.member:
            report.problems += await pg_dump_readable(path)
            report.notes.append(f"{db.member}: rows are checked after pg_restore (restore)")
    return report
