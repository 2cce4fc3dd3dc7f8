"""Shared fixtures: async tests on anyio/asyncio, databases on SQLite and PostgreSQL.

PostgreSQL comes from ``ARSPAY_TEST_PG_URL`` (default: the local server at
127.0.0.1:5432, database ``test``). Each test gets a fresh database cloned from a
migrated template. If the server does not answer, PostgreSQL tests are skipped — except
when ``CI=true`` or ``ARSPAY_TEST_REQUIRE_PG=1``, where they fail.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import gc
import os
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from ivr.clock import FakeClock
from ivr.settings import Settings, load_settings
from ivr.store import migrate
from ivr.store.db import Database

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _parse_without_collection(
    parse: Callable[..., ast.AST],
) -> Callable[..., ast.AST]:
    """``ast.parse`` with the garbage collector paused, for the whole test session.

    CPython 3.11 keeps the AST converter's recursion count in one per-interpreter slot. A
    collection inside a conversion can run a finaliser (an asyncio task's "exception was
    never retrieved" log), whose traceback formatting calls ``ast.parse`` itself and
    resets that slot: the outer parse then fails a correct source with ``SystemError:
    AST constructor recursion depth mismatch`` (CPython gh-106905, fixed in 3.12). Seen
    in the structure tests and in Schemathesis's (hypothesis's) own parsing, late in a
    long run."""

    lock = threading.RLock()  # threads (Schemathesis's workers) parse one at a time

    @functools.wraps(parse)
    def wrapper(*args: Any, **kwargs: Any) -> ast.AST:
        with lock:
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                return parse(*args, **kwargs)
            finally:
                if was_enabled:
                    gc.enable()

    return wrapper


if sys.version_info < (3, 12):
    ast.parse = _parse_without_collection(ast.parse)  # type: ignore[assignment]


def _require_pg() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("ARSPAY_TEST_REQUIRE_PG") == "1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _admin_dsn(url: str) -> str:
    u = make_url(url)
    return str(u.set(drivername="postgresql")).replace("***", u.password or "")


async def _pg_exec(url: str, *sql: str) -> None:
    conn = await asyncpg.connect(_admin_dsn(url), timeout=5)
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


class PgFactory:
    """Makes fresh PostgreSQL databases from one migrated template."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        # the pid lets tests/pg_cleanup.py drop a killed session's leftovers
        self.prefix = f"arspay_t_{os.getpid()}_{secrets.token_hex(3)}"
        self.template = f"{self.prefix}_tmpl"
        self.made: list[str] = []

    def url_for(self, name: str) -> str:
        return str(make_url(self.base_url).set(database=name)).replace(
            "***", make_url(self.base_url).password or ""
        )

    async def setup(self) -> None:
        await _pg_exec(self.base_url, f'CREATE DATABASE "{self.template}"')
        db = Database(self.url_for(self.template))
        try:
            await migrate.upgrade(db)
        finally:
            await db.close()

    async def new(self, *, empty: bool = False) -> str:
        """A new database: migrated (cloned from the template) or ``empty``."""
        name = f"{self.prefix}_{len(self.made)}"
        template = "template0" if empty else self.template
        await _pg_exec(self.base_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self.made.append(name)
        return self.url_for(name)

    def teardown(self) -> None:
        """Drop this session's databases in a detached process (tests/pg_cleanup.py): each
        DROP DATABASE waits for a checkpoint, minutes in all at the end of a full run."""
        # sh starts the cleaner in the background and exits: nothing is left to wait for
        subprocess.run(
            ["sh", "-c", '"$0" "$@" </dev/null >/dev/null 2>&1 &', sys.executable,
             str(Path(__file__).with_name("pg_cleanup.py")), _admin_dsn(self.base_url),
             *self.made, self.template],
            check=True,
            start_new_session=True,
        )  # fmt: skip


@pytest.fixture(scope="session")
def pg_factory() -> Iterator[PgFactory]:
    url = os.environ.get("ARSPAY_TEST_PG_URL", DEFAULT_PG)
    factory = PgFactory(url)
    try:
        asyncio.run(factory.setup())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if _require_pg():
            pytest.fail(f"PostgreSQL at {make_url(url).host} is required but failed: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    yield factory
    factory.teardown()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"

    async def build() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await migrate.upgrade(db)
        finally:
            await db.close()

    asyncio.run(build())
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database URL: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        target = tmp_path / "arspay.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite+aiosqlite:///{target}"
    factory: PgFactory = request.getfixturevalue("pg_factory")
    return asyncio.run(factory.new())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database with no schema at all, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    factory: PgFactory = request.getfixturevalue("pg_factory")
    return asyncio.run(factory.new(empty=True))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(env={"ARSPAY_PATHS_VAR_DIR": str(tmp_path / "var")})
