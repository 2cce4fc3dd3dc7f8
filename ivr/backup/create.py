"""``arspay backup create``: both databases into one archive, online.

The engine's database is snapshotted first, the vault's second: a card row in the
engine's snapshot was written after its vault record (the flows tokenize, then store
the token), so every token the engine's snapshot refers to is in the vault's — the
vault's may hold a few newer records no card refers to yet, which the orphan sweep
erases after a restore like any other. When both live in one PostgreSQL database, one
dump holds both (one snapshot).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ivr import __version__
from ivr.backup.archive import Compression, sha256_file, write_archive
from ivr.backup.errors import BackupError
from ivr.backup.manifest import FORMAT, DatabaseInfo, Manifest
from ivr.backup.snapshot import (
    Facts,
    pg_snapshot,
    same_database,
    sqlite_file,
    sqlite_snapshot,
    tool_version,
)
from ivr.settings import Settings
from vault.factory import database_url as vault_database_url


@dataclass(frozen=True)
class Source:
    """One database to snapshot: its role, URL and the member it goes to."""

    role: str
    url: str

    @property
    def file(self) -> Path | None:
        return sqlite_file(self.url)

    @property
    def member(self) -> str:
        return f"{self.role}.sqlite3" if self.file is not None else f"{self.role}.pgdump"


def sources(settings: Settings) -> tuple[Source, Source]:
    return Source("engine", settings.database_url), Source("vault", vault_database_url(settings))


async def _snapshot(src: Source, dest: Path, busy_timeout_ms: int) -> Facts:
    path = src.file
    if path is not None:
        return await asyncio.to_thread(sqlite_snapshot, path, dest, busy_timeout_ms=busy_timeout_ms)
    return await pg_snapshot(src.url, dest)


async def create_backup(
    settings: Settings, out: Path, *, compression: Compression = "gz", force: bool = False
) -> Manifest:
    """Write the archive ``out`` (0600); refuse to replace a file unless ``force``."""
    if out.exists() and not force:  # noqa: ASYNC240 - one stat
        raise BackupError(f"{out} exists (--force replaces it)")
    if out.is_dir():  # noqa: ASYNC240
        raise BackupError(f"{out} is a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    engine, vault = sources(settings)
    shared = engine.file is None and vault.file is None and same_database(engine.url, vault.url)
    staging = Path(tempfile.mkdtemp(prefix=".arspay-backup-", dir=out.parent))  # 0700
    try:
        created_at = datetime.now(UTC)
        busy = settings.database.busy_timeout_ms
        engine_facts = await _snapshot(engine, staging / engine.member, busy)
        files = [staging / engine.member]
        if shared:
            vault_facts, vault_member = engine_facts, engine.member
        else:
            vault_facts = await _snapshot(vault, staging / vault.member, busy)
            vault_member = vault.member
            files.append(staging / vault.member)
        if vault_facts.vault_schema is None:
            raise BackupError("the vault database holds no vault (run `arspay vault init`)")
        if engine_facts.revision is None:
            raise BackupError("the engine database has no schema (run `arspay migrate`)")
        tools = {"sqlite": sqlite3.sqlite_version}
        if engine.file is None or vault.file is None:
            tools["pg_dump"] = await tool_version("pg_dump")
        manifest = Manifest(
            format=FORMAT,
            created_at=created_at,
            arspay_version=__version__,
            engine=DatabaseInfo("engine", "sqlite" if engine.file else "postgresql",
                                engine.member, engine_facts.revision,
                                engine_facts.part("engine")),
            vault=DatabaseInfo("vault", "sqlite" if vault.file else "postgresql",
                               vault_member, vault_facts.vault_schema,
                               vault_facts.part("vault")),
            members=tuple([await asyncio.to_thread(sha256_file, f) for f in files]),
            kek_ids=vault_facts.kek_ids,
            tools=tools,
        )  # fmt: skip
        await asyncio.to_thread(write_archive, out, manifest, files, compression)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)
