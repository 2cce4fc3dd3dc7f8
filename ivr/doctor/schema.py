"""The databases' schemas: the engine's at the newest Alembic revision
(``ivr/store/migrations``), the vault's at the schema version this release reads
(``vault/schema.py``: no Alembic; an older version is upgraded when the vault opens it).
Nothing is created or migrated here; a SQLite file that does not exist is not made."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from ivr.doctor.report import Finding, fail, ok, skip, warn
from ivr.errors import ConfigError
from ivr.settings import Settings
from ivr.store import migrate
from ivr.store.db import Database
from vault.factory import database_url as vault_database_url
from vault.schema import SCHEMA_VERSION, vault_meta

ENGINE_CHECK = "migrations"
VAULT_CHECK = "vault-schema"


def _missing_sqlite_file(url: str) -> Path | None:
    try:
        u = make_url(url)
    except ArgumentError:
        return None  # reported when the URL is used
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    path = Path(u.database)
    return None if path.exists() else path


def _reason(exc: Exception) -> str:
    """The driver's own words (never the URL, which may hold a password)."""
    orig = getattr(exc, "orig", None)
    return f"{type(orig or exc).__name__}: {orig or exc}".splitlines()[0][:200]


async def check_engine_schema(settings: Settings) -> Finding:
    url = settings.database_url
    if (path := _missing_sqlite_file(url)) is not None:
        return fail(ENGINE_CHECK, f"the engine database {path} does not exist", "arspay migrate")
    head = migrate.head()
    try:
        db = Database.from_settings(settings)
    except ConfigError as exc:
        return fail(ENGINE_CHECK, exc.message, "correct database.url")
    try:
        current = await migrate.current(db)
    except (OSError, SQLAlchemyError) as exc:
        return fail(
            ENGINE_CHECK,
            f"cannot read the engine database: {_reason(exc)}",
            "check database.url and that the database server is up",
        )
    finally:
        await db.close()
    if current == head:
        return ok(ENGINE_CHECK, f"the engine database is at the newest revision {head}")
    if current is None:
        return fail(ENGINE_CHECK, "the engine database has no schema", "arspay migrate")
    script = ScriptDirectory.from_config(migrate.alembic_config())
    known = {r.revision for r in script.walk_revisions()}
    if current in known:
        return fail(
            ENGINE_CHECK,
            f"the engine database is at revision {current}, this release needs {head}",
            "arspay migrate (after a backup), then restart the engine",
        )
    return fail(
        ENGINE_CHECK,
        f"the engine database is at revision {current}, unknown to this release",
        "run the release that migrated it (a newer one), or restore a backup",
    )


async def check_vault_schema(settings: Settings, *, vault_only: bool = False) -> Finding:
    if settings.vault.mode != "local" and not vault_only:
        return skip(
            VAULT_CHECK,
            "vault.mode is remote: run arspay doctor --role vault with the vault's config",
        )
    url = vault_database_url(settings)
    if (path := _missing_sqlite_file(url)) is not None:
        return warn(
            VAULT_CHECK, f"the vault database {path} does not exist yet", "arspay vault init"
        )
    try:
        engine = create_async_engine(url)
    except (SQLAlchemyError, ValueError) as exc:
        return fail(
            VAULT_CHECK, f"vault.database_url: {_reason(exc)}", "correct vault.database_url"
        )
    try:
        async with engine.connect() as conn:
            found = (
                await conn.execute(
                    select(vault_meta.c.value).where(vault_meta.c.key == "schema_version")
                )
            ).scalar()
    except (OSError, SQLAlchemyError) as exc:
        return fail(
            VAULT_CHECK,
            f"cannot read the vault database: {_reason(exc)}",
            "check vault.database_url; arspay vault init creates it",
        )
    finally:
        await engine.dispose()
    if found == SCHEMA_VERSION:
        return ok(VAULT_CHECK, f"the vault database is at schema version {found}")
    if found is not None and found.isdigit() and int(found) < int(SCHEMA_VERSION):
        return warn(
            VAULT_CHECK,
            f"the vault database is at schema version {found}; this release reads "
            f"{SCHEMA_VERSION} (upgraded when the vault opens it)",
            "restart arspay-vault (or run arspay vault status) after a backup",
        )
    return fail(
        VAULT_CHECK,
        f"the vault database's schema version is {found!r}, this release reads {SCHEMA_VERSION}",
        "run the release that wrote it, or restore a backup",
    )
