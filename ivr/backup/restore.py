"""``arspay backup restore``: an archive into a fresh place — never over the live system.

SQLite members become ``<target>/arspay.db`` and ``<target>/vault/vault.db``: the target
is then a ``paths.var_dir``. PostgreSQL dumps go into the (empty) databases named by
URL with ``pg_restore``. The target must be empty unless ``force``; a target that is
the live configuration's database is refused whatever ``force`` says.

The archive is verified first (:mod:`ivr.backup.verify`), into a staging directory in
the target. The key files come from the configuration (they are never in the archive):
:func:`restored_settings` keeps the configured key files and moves the databases and
checkpoint directories into the target; ``<target>/restored.toml`` records that for
the operator.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from ivr.backup.errors import ArchiveInvalid, RestoreRefused
from ivr.backup.manifest import DatabaseInfo, Manifest
from ivr.backup.snapshot import pg_is_empty, pg_restore, same_database, sqlite_file
from ivr.backup.verify import verify_archive
from ivr.consent.keys import key_path as consent_key_path
from ivr.console.mfa import key_path as mfa_key_path
from ivr.settings import Settings
from vault.factory import audit_key_path
from vault.factory import database_url as vault_database_url

ENGINE_FILE = "arspay.db"
VAULT_FILE = Path("vault") / "vault.db"
STAGING = ".restore-staging"


@dataclass(frozen=True)
class Target:
    """Where to restore: a directory, and the PostgreSQL databases for dumps."""

    directory: Path
    database_url: str = ""
    vault_database_url: str = ""

    def engine_url(self, manifest: Manifest) -> str:
        if manifest.engine.dialect == "sqlite":
            return f"sqlite+aiosqlite:///{self.directory.resolve() / ENGINE_FILE}"
        return self.database_url

    def vault_url(self, manifest: Manifest) -> str:
        if manifest.vault.dialect == "sqlite":
            return f"sqlite+aiosqlite:///{self.directory.resolve() / VAULT_FILE}"
        if manifest.vault.member == manifest.engine.member:
            return self.database_url  # one dump held both
        return self.vault_database_url


def restored_settings(settings: Settings, target: Target, manifest: Manifest) -> Settings:
    """``settings`` pointed at the restored databases: the same key files (absolute),
    fresh checkpoint directories in the target."""
    var = target.directory.resolve()
    s = settings
    vault = s.vault.model_copy(update={
        "database_url": type(s.vault.database_url)(target.vault_url(manifest)),
        "key_file": s.vault.key_file.absolute(),
        "fingerprint_key_file": s.vault.fingerprint_key_file.absolute(),
        "audit_key_file": audit_key_path(s).absolute(),
        "audit_checkpoint_dir": var / "vault" / "audit-checkpoints",
    })  # fmt: skip
    gateway_key = s.gateway.accounts_key_file or s.paths.var_dir / "pg-accounts.key"
    ari = s.asterisk.credentials_file or s.paths.var_dir / "asterisk" / "credentials.toml"
    return s.model_copy(update={
        "paths": s.paths.model_copy(update={"var_dir": var}),
        "database": s.database.model_copy(
            update={"url": type(s.database.url)(target.engine_url(manifest))}
        ),
        "vault": vault,
        "consent": s.consent.model_copy(update={
            "key_file": consent_key_path(s).absolute(),
            "checkpoint_dir": var / "consent" / "checkpoints",
        }),
        "console": s.console.model_copy(update={"mfa_key_file": mfa_key_path(s).absolute()}),
        "gateway": s.gateway.model_copy(update={"accounts_key_file": gateway_key.absolute()}),
        "asterisk": s.asterisk.model_copy(update={"credentials_file": ari.absolute()}),
    })  # fmt: skip


def _toml(settings: Settings) -> str:
    def url(value: str) -> str:
        u = make_url(value)
        return u.set(password=None).render_as_string(hide_password=False) if u.password else value

    rows = [
        ("paths", "var_dir", str(settings.paths.var_dir)),
        ("database", "url", url(settings.database_url)),
        ("vault", "database_url", url(settings.vault.database_url.get_secret_value())),
        ("vault", "key_file", str(settings.vault.key_file)),
        ("vault", "fingerprint_key_file", str(settings.vault.fingerprint_key_file)),
        ("vault", "audit_key_file", str(settings.vault.audit_key_file)),
        ("consent", "key_file", str(settings.consent.key_file)),
        ("console", "mfa_key_file", str(settings.console.mfa_key_file)),
        ("gateway", "accounts_key_file", str(settings.gateway.accounts_key_file)),
        ("asterisk", "credentials_file", str(settings.asterisk.credentials_file)),
    ]
    out = ["# The restored system: merge into arspay.toml (passwords are not written).\n"]
    section = ""
    for sec, key, value in rows:
        if sec != section:
            out.append(f"\n[{sec}]\n")
            section = sec
        quoted = value.replace("\\", "\\\\").replace('"', '\\"')
        out.append(f'{key} = "{quoted}"\n')
    return "".join(out)


def _live_paths(settings: Settings) -> set[Path]:
    out = set()
    for url in (settings.database_url, vault_database_url(settings)):
        path = sqlite_file(url)
        if path is not None:
            out.add(path.resolve())
    return out


def _check_directory(settings: Settings, d: Path, force: bool) -> None:
    if d.exists() and not d.is_dir():
        raise RestoreRefused(f"{d} is not a directory")
    if d.exists() and any(p.name != STAGING for p in d.iterdir()) and not force:
        raise RestoreRefused(f"{d} is not empty (--force restores over it)")
    live = _live_paths(settings)
    for file in (ENGINE_FILE, VAULT_FILE):
        if (d.resolve() / file) in live:
            raise RestoreRefused(f"{d / file} is a live database of this configuration")


async def _check_databases(
    settings: Settings, target: Target, manifest: Manifest, force: bool
) -> None:
    for db, url in ((manifest.engine, target.engine_url(manifest)),
                    (manifest.vault, target.vault_url(manifest))):  # fmt: skip
        if db.dialect != "postgresql":
            continue
        if not url:
            raise RestoreRefused(
                f"the {db.role} database is a PostgreSQL dump: name the database to restore "
                f"it into (--{'vault-' if db.role == 'vault' else ''}database-url)"
            )
        for live in (settings.database_url, vault_database_url(settings)):
            if make_url(live).get_backend_name() == "postgresql" and same_database(url, live):
                raise RestoreRefused(f"the {db.role} target is a live database of this config")
        if not force and not await pg_is_empty(url):
            raise RestoreRefused(f"the {db.role} target database is not empty (--force cleans)")


def _place(staged: Path, dest: Path) -> None:
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{dest}{suffix}").unlink(missing_ok=True)
    os.replace(staged, dest)


async def restore_backup(
    settings: Settings, archive: Path, target: Target, *, force: bool = False
) -> tuple[Manifest, Settings]:
    """Verify ``archive``, put its databases in ``target``; the manifest and the
    settings of the restored system."""
    d = target.directory
    _check_directory(settings, d, force)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = d / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    try:
        report = await verify_archive(archive, staging)
        if not report.ok:
            raise ArchiveInvalid("the archive does not verify: " + "; ".join(report.problems))
        manifest = report.manifest
        await _check_databases(settings, target, manifest, force)
        done: set[str] = set()
        for db, url in ((manifest.engine, target.engine_url(manifest)),
                        (manifest.vault, target.vault_url(manifest))):  # fmt: skip
            if db.member in done:
                continue
            done.add(db.member)
            await _put(db, staging / db.member, d, url, force=force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    restored = restored_settings(settings, target, manifest)
    (d / "restored.toml").write_text(_toml(restored), encoding="utf-8")
    return manifest, restored


async def _put(db: DatabaseInfo, member: Path, d: Path, url: str, *, force: bool) -> None:
    if db.dialect == "sqlite":
        _place(member, d / (ENGINE_FILE if db.role == "engine" else VAULT_FILE))
    else:
        await pg_restore(member, url, clean=force)
