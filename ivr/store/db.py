"""The async database handle: one engine, one session factory, one way to transact.

SQLite (default) runs in WAL mode with a busy timeout, and every transaction starts with
``BEGIN IMMEDIATE``: a deferred transaction that reads and then writes can fail with
``SQLITE_BUSY`` at once when another process wrote in between, whatever the timeout;
taking the write lock up front makes concurrent writers wait their turn instead.
PostgreSQL runs at READ COMMITTED and callers lock the rows they change
(``SELECT … FOR UPDATE``) or lean on unique indexes.

``on_commit(tables, callback)``: after a ``transaction()`` of this process commits, the
callbacks of the tables it inserted or updated rows in are called (the polling workers
wake at once instead of at their next poll; see :mod:`ivr.jobs.pacing`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Select, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.dml import Insert, Update

from ivr.errors import ConfigError

log = logging.getLogger(__name__)
M = TypeVar("M")
T = TypeVar("T")

_TOUCHED = "arspay.touched"  # Connection.info: tables this transaction wrote rows in
_CONNS = "arspay.conns"  # Session.info: the info dicts of the connections it began


class Database:
    """Owns the engine. ``async with db.transaction() as s:`` commits or rolls back."""

    def __init__(
        self, url: str, *, busy_timeout_ms: int = 15_000, pool_size: int = 10, echo: bool = False
    ) -> None:
        try:
            parsed = make_url(url)
        except Exception:  # sqlalchemy raises ArgumentError with the URL inside
            raise ConfigError("database URL is not a valid SQLAlchemy URL") from None
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        self.url = parsed
        kwargs: dict[str, Any] = {"echo": echo}
        file_sqlite = self.dialect == "sqlite" and parsed.database not in (None, "", ":memory:")
        if self.dialect == "sqlite":
            if file_sqlite:
                Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000}
            if not file_sqlite:
                kwargs["poolclass"] = NullPool
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
            kwargs["pool_timeout"] = 120
            kwargs["pool_pre_ping"] = True
        if file_sqlite:
            # SQLite has one writer at a time. Writers share ONE connection, so this
            # process's transactions queue in order for it instead of sleep-polling
            # SQLite's lock (which collapses throughput under concurrency); readers
            # get their own pool and, in WAL mode, never wait for the writer.
            self.engine: AsyncEngine = create_async_engine(
                parsed,
                pool_size=1,
                max_overflow=0,
                pool_timeout=2 * busy_timeout_ms / 1000,
                **kwargs,
            )
            self.read_engine: AsyncEngine = create_async_engine(
                parsed, pool_size=pool_size, max_overflow=0, pool_timeout=120, **kwargs
            )
            _sqlite_tuning(self.engine, busy_timeout_ms, immediate=True)
            _sqlite_tuning(self.read_engine, busy_timeout_ms, immediate=False)
        else:
            self.engine = self.read_engine = create_async_engine(parsed, **kwargs)
            if self.dialect == "sqlite":
                _sqlite_tuning(self.engine, busy_timeout_ms, immediate=True)
        self.sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)
        # a Session class of this Database's own, so its commit hooks stay its own
        writes_class = type("WriteSession", (Session,), {})
        self._writes = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=writes_class
        )
        self._commit_hooks: dict[str, list[Callable[[], None]]] = {}
        event.listen(self.engine.sync_engine, "after_execute", _after_execute)
        event.listen(writes_class, "after_begin", _after_begin)
        event.listen(writes_class, "after_commit", self._after_commit)
        event.listen(writes_class, "after_rollback", _after_rollback)

    def on_commit(self, tables: Iterable[str], callback: Callable[[], None]) -> None:
        """Call ``callback`` (no arguments, on the event loop, must not raise or block)
        after each ``transaction()`` that inserted or updated rows in one of ``tables``
        has committed."""
        for name in tables:
            self._commit_hooks.setdefault(name, []).append(callback)

    def _after_commit(self, session: Session) -> None:
        touched: set[str] = set()
        for info in session.info.pop(_CONNS, ()):
            touched |= info.pop(_TOUCHED, set())
        called: set[int] = set()
        for name in touched:
            for callback in self._commit_hooks.get(name, ()):
                if id(callback) not in called:
                    called.add(id(callback))
                    try:
                        callback()
                    except Exception:  # a hook must never turn a commit into an error
                        log.exception("commit hook failed")

    @classmethod
    def from_settings(cls, settings: Any) -> Database:
        return cls(
            settings.database_url,
            busy_timeout_ms=settings.database.busy_timeout_ms,
            pool_size=settings.database.pool_size,
            echo=settings.database.echo,
        )

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A read-write transaction (on SQLite: the process's one writer connection,
        ``BEGIN IMMEDIATE``). Never open a second one inside it: it would wait for
        itself. ``sessions()`` are for reads."""
        async with self._writes() as session, session.begin():
            yield session

    async def all(self, query: Select[T]) -> list[T]:
        """The first column of every row ``query`` selects (a model's rows, or ids),
        read outside any transaction: the candidates a sweep then takes one by one,
        each in its own transaction with :func:`locked_in`."""
        async with self.sessions() as s:
            return list(await s.scalars(query))

    async def close(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


async def locked_in(s: AsyncSession, model: type[M], key: Any, *statuses: str) -> M | None:
    """``model``'s row ``key`` locked for the caller's transaction (``FOR UPDATE``); None
    if it is gone or, ``statuses`` given, no longer in one of them (another process
    moved it on meanwhile)."""
    row: Any = await s.get(model, key, with_for_update=True)
    if row is None or (statuses and row.status not in statuses):
        return None
    found: M = row
    return found


def _after_execute(
    conn: Any, clause: Any, _multiparams: Any, _params: Any, _options: Any, result: Any
) -> None:
    if isinstance(clause, Insert | Update) and result.rowcount != 0:
        name = getattr(clause.table, "name", None)
        if isinstance(name, str):
            conn.info.setdefault(_TOUCHED, set()).add(name)


def _after_begin(session: Session, _transaction: Any, connection: Any) -> None:
    connection.info.pop(_TOUCHED, None)  # left by a write outside transaction()
    session.info.setdefault(_CONNS, []).append(connection.info)


def _after_rollback(session: Session) -> None:
    for info in session.info.pop(_CONNS, ()):
        info.pop(_TOUCHED, None)


def _sqlite_tuning(engine: AsyncEngine, busy_timeout_ms: int, *, immediate: bool) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to the "begin" hook below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the lock up front (no deadlocking read-to-write upgrades);
        # readers take a snapshot and never block anyone in WAL mode.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
