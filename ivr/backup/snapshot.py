"""One database into one file, consistently, while the engine may be writing — and back.

* SQLite: the backup API (:meth:`sqlite3.Connection.backup`) in one step, i.e. inside
  one read transaction: in WAL mode writers go on meanwhile and the copy is the
  database as of that transaction's start. The copy is switched to a rollback journal
  so it is one self-contained file.
* PostgreSQL: ``pg_dump --format=custom`` on a snapshot exported by a REPEATABLE READ
  transaction that also counts the rows and reads the revision and the KEK ids, so the
  manifest describes exactly what the dump holds. ``pg_restore`` loads it back.

The facts of a snapshot (:class:`Facts`) are read the same way on both: tables and
their rows, the engine's Alembic revision, the vault's schema version and KEK ids. The
password of a PostgreSQL URL goes to the tools in ``PGPASSWORD``, never on a command line.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import URL, make_url

from ivr.backup.errors import BackupError

VAULT_PREFIX = "vault_"
KEK_IDS_SQL = (
    "SELECT kek_id FROM vault_records UNION "
    "SELECT kek_id FROM vault_keks WHERE state <> 'retired' ORDER BY 1"
)


@dataclass(frozen=True)
class Facts:
    """What a snapshot holds: rows per table, the engine's revision, the vault's schema
    version and the KEK ids (both None / empty where the tables are not in it)."""

    tables: dict[str, int] = field(default_factory=dict)
    revision: str | None = None
    vault_schema: str | None = None
    kek_ids: tuple[str, ...] = ()

    def part(self, role: str) -> dict[str, int]:
        """The row counts of one role's tables (the vault's are ``vault_*``)."""
        vault = role == "vault"
        return {t: n for t, n in self.tables.items() if t.startswith(VAULT_PREFIX) == vault}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _count_sql(table: str) -> str:
    """A table name read from the catalogue, quoted: never user input."""
    return "SELECT count(*) FROM " + _quote(table)  # noqa: S608


def _facts(tables: list[str], scalar: Callable[[str], Any]) -> Facts:
    counts = {t: int(scalar(_count_sql(t))) for t in sorted(tables)}
    revision = (
        scalar("SELECT version_num FROM alembic_version") if "alembic_version" in counts else None
    )
    vault_schema = None
    if "vault_meta" in counts:
        vault_schema = scalar("SELECT value FROM vault_meta WHERE key = 'schema_version'")
    return Facts(counts, revision, vault_schema)


# --------------------------------------------------------------------------- SQLite


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if parsed.database in (None, "", ":memory:"):
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(str(parsed.database))


def create_private(path: Path) -> None:
    """An empty file only the owner can read (refusing one that exists)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))


def sqlite_snapshot(source: Path, dest: Path, *, busy_timeout_ms: int = 15_000) -> Facts:
    """Copy ``source`` into the new file ``dest`` (mode 0600) in one read transaction;
    the facts are read from the copy."""
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    create_private(dest)
    # Read-write (it only reads): a read-only connection cannot open a WAL database
    # whose -shm file is missing.
    src = sqlite3.connect(source, timeout=busy_timeout_ms / 1000)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)  # pages=-1: the whole database in one step
            dst.execute("PRAGMA journal_mode=DELETE").close()
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup of {source.name} failed: {exc}") from None
    finally:
        src.close()
    return sqlite_facts(dest)


def sqlite_facts(path: Path) -> Facts:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]

        def scalar(sql: str) -> Any:
            return conn.execute(sql).fetchone()[0]

        facts = _facts(tables, scalar)
        if "vault_records" in facts.tables:
            kek_ids = tuple(r[0] for r in conn.execute(KEK_IDS_SQL))
            facts = Facts(facts.tables, facts.revision, facts.vault_schema, kek_ids)
        return facts
    finally:
        conn.close()


def sqlite_integrity(path: Path) -> list[str]:
    """``PRAGMA integrity_check``: its problems, none when it says ok."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return [f"not a SQLite database ({exc})"]
    return [] if rows == ["ok"] else rows[:10]


# --------------------------------------------------------------------------- PostgreSQL


def same_database(a: str, b: str) -> bool:
    """Whether two PostgreSQL URLs name the same database on the same server."""
    ua, ub = make_url(a), make_url(b)
    return (ua.host or "localhost", ua.port or 5432, ua.database) == (
        ub.host or "localhost",
        ub.port or 5432,
        ub.database,
    )


def pg_env(url: URL) -> dict[str, str]:
    """The libpq environment naming ``url``'s server, user, database and SSL mode (over
    any ``PG*`` variables of this process)."""
    env = dict(os.environ)
    ssl = url.query.get("sslmode") or url.query.get("ssl")
    pairs = {
        "PGHOST": url.host,
        "PGPORT": str(url.port) if url.port else None,
        "PGUSER": url.username,
        "PGPASSWORD": url.password if isinstance(url.password, str) else None,
        "PGDATABASE": url.database,
        "PGSSLMODE": ssl if isinstance(ssl, str) else None,
    }
    env.update({k: v for k, v in pairs.items() if v})
    return env


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed (PostgreSQL client tools are needed)")
    return path


async def run_tool(url: URL, *args: str) -> str:
    """Run a PostgreSQL client tool against ``url``; its stdout, or BackupError with
    its message."""
    proc = await asyncio.create_subprocess_exec(
        tool(args[0]),
        *args[1:],
        env=pg_env(url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip().splitlines()
        raise BackupError(f"{args[0]} failed: {' / '.join(message[-3:]) or proc.returncode}")
    return out.decode(errors="replace")


async def tool_version(name: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        tool(name), "--version", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return out.decode().strip()


async def connect(url: URL) -> asyncpg.Connection:
    password = url.password if isinstance(url.password, str) else None
    ssl = url.query.get("ssl") or url.query.get("sslmode")
    return await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=password,
        database=url.database, ssl=ssl if isinstance(ssl, str) else None, timeout=15,
    )  # fmt: skip


async def pg_facts(conn: asyncpg.Connection) -> Facts:
    tables = [
        r[0]
        for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
    ]
    found: dict[str, Any] = {}
    queries = [_count_sql(t) for t in tables]
    if "alembic_version" in tables:
        queries.append("SELECT version_num FROM alembic_version")
    if "vault_meta" in tables:
        queries.append("SELECT value FROM vault_meta WHERE key = 'schema_version'")
    for sql in queries:
        found[sql] = await conn.fetchval(sql)
    facts = _facts(tables, found.__getitem__)
    if "vault_records" in tables:
        kek_ids = tuple(r[0] for r in await conn.fetch(KEK_IDS_SQL))
        facts = Facts(facts.tables, facts.revision, facts.vault_schema, kek_ids)
    return facts


async def pg_snapshot(url: str, dest: Path) -> Facts:
    """``pg_dump`` of the database at ``url`` into the new file ``dest`` (0600), on a
    snapshot whose facts are read in the same transaction."""
    parsed = make_url(url)
    create_private(dest)
    conn = await connect(parsed)
    try:
        tx = conn.transaction(isolation="repeatable_read", readonly=True)
        await tx.start()
        try:
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            facts = await pg_facts(conn)
            await run_tool(
                parsed, "pg_dump", "--format=custom", f"--snapshot={snapshot}",
                f"--file={dest}",
            )  # fmt: skip
        finally:
            await tx.rollback()
    finally:
        await conn.close()
    return facts


async def pg_is_empty(url: str) -> bool:
    conn = await connect(make_url(url))
    try:
        n = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
        )
    finally:
        await conn.close()
    return int(n) == 0


async def pg_restore(dump: Path, url: str, *, clean: bool) -> None:
    """Load ``dump`` into the database at ``url`` in one transaction (objects owned by
    the connecting role; ``clean``: drop what is there first)."""
    parsed = make_url(url)
    args = ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
            "--single-transaction", f"--dbname={parsed.database}"]  # fmt: skip
    if clean:
        args += ["--clean", "--if-exists"]
    await run_tool(parsed, *args, str(dump))


async def pg_dump_readable(dump: Path) -> list[str]:
    """``pg_restore --list``: problems if the dump's table of contents does not read."""
    try:
        listing = await run_tool(make_url("postgresql://"), "pg_restore", "--list", str(dump))
    except BackupError as exc:
        return [f"{dump.name}: {exc.message}"]
    return [] if "TABLE DATA" in listing else [f"{dump.name}: holds no table data"]
