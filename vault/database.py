"""Running work on the vault's database: SQLite by default (WAL), PostgreSQL by URL.

Every database operation is a plain synchronous function of a SQLAlchemy
:class:`~sqlalchemy.engine.Connection`, run by :meth:`VaultDatabase.write` (one
transaction) or :meth:`VaultDatabase.read`:

* SQLite: the standard-library driver on threads the store owns. **One writer
  thread** with one connection (every transaction starts with ``BEGIN IMMEDIATE``;
  writes of this process queue on that thread, other processes wait on the busy
  timeout) and a small pool of reader threads whose autocommit connections never block
  on the writer in WAL mode. A whole write transaction is one hop from the event loop
  to the writer thread and back — not one per statement, cursor and commit as through
  an async driver — and the thread releases the GIL while SQLite works and fsyncs.
* PostgreSQL: asyncpg, the same functions through ``AsyncConnection.run_sync``.

``PRAGMA secure_delete=ON`` makes SQLite overwrite deleted rows with zeros, and
:meth:`VaultDatabase.checkpoint_wal` truncates the WAL so the page images holding a deleted
row go too. ``synchronous=FULL``: a token handed out must survive a power cut.

This module knows no table: :class:`vault.store.VaultStore` (the operations) builds on
it, and :mod:`vault.audit_chain` runs its work through it without knowing the store.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vault.errors import VaultConfigError

R = TypeVar("R")
Work = Callable[[Connection], R]


class VaultDatabase:
    """The connections and threads of the vault database, and the two ways to use them."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 15_000, pool_size: int = 5) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise VaultConfigError("vault database URL is not a valid SQLAlchemy URL") from None
        self.dialect = parsed.get_backend_name()
        self._pg: AsyncEngine | None = None
        self._closed = False
        if self.dialect == "sqlite":
            if parsed.database in (None, "", ":memory:"):
                raise VaultConfigError("the vault needs a SQLite file, not an in-memory database")
            _prepare_sqlite_file(Path(parsed.database or ""))
            sync_url = parsed.set(drivername="sqlite+pysqlite")  # on our own threads
            # Each connection is used by one thread at a time (pool checkout).
            args = {"timeout": busy_timeout_ms / 1000, "check_same_thread": False}
            self._writer: Engine = create_engine(
                sync_url, pool_size=1, max_overflow=0, pool_timeout=300, connect_args=args
            )
            self._reader: Engine = create_engine(
                sync_url, pool_size=pool_size, max_overflow=0, pool_timeout=300, connect_args=args
            )
            _sqlite_pragmas(self._writer, busy_timeout_ms, writer=True)
            _sqlite_pragmas(self._reader, busy_timeout_ms, writer=False)
            self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="vault-db-write")
            self._read_threads = ThreadPoolExecutor(pool_size, thread_name_prefix="vault-db-read")
        elif self.dialect == "postgresql":
            self._pg = create_async_engine(
                parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
        else:
            raise VaultConfigError(f"unsupported vault database {self.dialect!r}")

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def sqlite_binder(self, column_type: Any) -> Callable[[Any], Any] | None:
        """What SQLAlchemy itself binds for ``column_type`` on the SQLite writer (None on
        PostgreSQL, or when it binds values as they are)."""
        if self._pg is not None:
            return None
        dialect = self._writer.dialect
        binder: Callable[[Any], Any] | None = column_type.dialect_impl(dialect).bind_processor(
            dialect
        )
        return binder

    # ------------------------------------------------------------------ running work

    async def write(self, work: Work[R]) -> R:
        """``work(conn)`` in one write transaction (SQLite: on the writer thread)."""
        if self._pg is not None:
            async with self._pg.begin() as conn:
                return await conn.run_sync(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._write_thread, self._sqlite_write, work)

    async def read(self, work: Work[R]) -> R:
        """``work(conn)`` on a reader connection (SQLite: autocommit, on a reader thread)."""
        if self._pg is not None:
            async with self._pg.connect() as conn:
                return await conn.run_sync(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_threads, self._sqlite_read, work)

    def _sqlite_write(self, work: Work[R]) -> R:
        with self._writer.begin() as conn:
            return work(conn)

    def _sqlite_read(self, work: Work[R]) -> R:
        with self._reader.connect() as conn:
            return work(conn)

    def _sqlite_checkpoint(self) -> None:
        """Outside any transaction (hence on the driver connection, which SQLAlchemy
        would wrap in ``BEGIN IMMEDIATE``). Best effort: reports "busy" (no error) while
        a reader still uses old WAL frames; the next checkpoint gets them."""
        with self._writer.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").close()

    async def checkpoint_wal(self) -> None:
        """SQLite: truncate the WAL after a delete (nothing to do on PostgreSQL)."""
        if self._pg is None:
            await asyncio.get_running_loop().run_in_executor(
                self._write_thread, self._sqlite_checkpoint
            )

    async def close(self) -> None:
        """Close every connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._pg is not None:
            await self._pg.dispose()
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._write_thread, self._writer.dispose)
        await loop.run_in_executor(self._read_threads, self._reader.dispose)
        self._write_thread.shutdown()
        self._read_threads.shutdown()


def _prepare_sqlite_file(path: Path) -> None:
    """Directory 0700 and database file 0600 before SQLite creates it (SQLite gives the
    ``-wal`` and ``-shm`` files the database file's mode)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.close(fd)


def _sqlite_pragmas(engine: Engine, busy_timeout_ms: int, *, writer: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # autocommit; the writer begins below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    if writer:

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
