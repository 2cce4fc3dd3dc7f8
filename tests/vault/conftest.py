"""Vault fixtures: KEK providers (key file, SoftHSM2), vault databases (SQLite and a
scratch PostgreSQL database per test), the vault in-process and behind its socket, and
a card gateway that records what it received.

SoftHSM2 runs on a private ``SOFTHSM2_CONF`` whose token directory lives in the test
session's temporary directory (never the system one). A PKCS#11 library only sees the
tokens that existed when it was initialised, so a pool of throw-away tokens is made
with ``softhsm2-util --init-token --free`` before the library is first loaded; each test
takes fresh ones.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from ivr.clock import FakeClock
from tests.vault.vault_helpers import (
    NOW,
    SOFTHSM_MODULE,
    KekSetup,
    RecordingGateway,
    SoftHsm,
    build_vault,
    make_kek,
    make_server,
)
from vault.client import VaultClient
from vault.remote import RemoteVault
from vault.server import VaultServer
from vault.service import LocalVault

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    if shutil.which("softhsm2-util") is None or not Path(SOFTHSM_MODULE).exists():
        pytest.fail("softhsm2 is required (apt-get install softhsm2)")
    hsm = SoftHsm(tmp_path_factory.mktemp("softhsm"))
    hsm._make(60)
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)  # subprocesses (CLI, server) inherit it
    return hsm


# --------------------------------------------------------------------------- KEKs


@pytest.fixture(params=["file", "pkcs11"])
def kek_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def kek(kek_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[KekSetup]:
    hsm = request.getfixturevalue("softhsm") if kek_kind == "pkcs11" else None
    setup = make_kek(kek_kind, tmp_path, hsm)
    yield setup
    setup.provider.close()


# --------------------------------------------------------------------------- databases


def _require_pg() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("ARSPAY_TEST_REQUIRE_PG") == "1"


def _dsn(url: str) -> str:
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


class ScratchPg:
    """Scratch PostgreSQL databases for the vault, dropped at the end of the session."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.prefix = f"arspay_vault_{secrets.token_hex(3)}"
        self.made: list[str] = []

    async def _exec(self, *sql: str) -> None:
        conn = await asyncpg.connect(_dsn(self.base_url), timeout=5)
        try:
            for statement in sql:
                await conn.execute(statement)
        finally:
            await conn.close()

    def new(self) -> str:
        name = f"{self.prefix}_{len(self.made)}"
        asyncio.run(self._exec(f'CREATE DATABASE "{name}"'))
        self.made.append(name)
        return make_url(self.base_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        drops = [f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in self.made]
        if drops:
            asyncio.run(self._exec(*drops))


@pytest.fixture(scope="session")
def scratch_pg() -> Iterator[ScratchPg]:
    url = os.environ.get("ARSPAY_TEST_PG_URL", DEFAULT_PG)
    pg = ScratchPg(url)
    try:
        asyncio.run(pg._exec("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if _require_pg():
            pytest.fail(f"PostgreSQL is required but failed: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    yield pg
    pg.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def vault_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The vault's own database: a SQLite file, or a scratch PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'vaultdb' / 'vault.db'}"
    pg: ScratchPg = request.getfixturevalue("scratch_pg")
    return pg.new()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'vaultdb' / 'vault.db'}"


# --------------------------------------------------------------------------- vaults


@pytest.fixture
def gateway() -> RecordingGateway:
    return RecordingGateway()


@pytest.fixture
def vault_clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def vault(
    kek: KekSetup, sqlite_url: str, vault_clock: FakeClock, gateway: RecordingGateway
) -> AsyncIterator[LocalVault]:
    v = await build_vault(
        sqlite_url, kek.provider, vault_clock, gateway, audit_key_file=kek.audit_key_file
    )
    yield v
    await v.close()


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory for Unix sockets (paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="vlt", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def server(vault: LocalVault, socket_dir: Path) -> AsyncIterator[VaultServer]:
    srv = make_server(vault, socket_dir)
    await srv.start()
    yield srv
    await srv.close()


@pytest.fixture(params=["local", "remote"])
async def client(
    request: pytest.FixtureRequest, vault: LocalVault, socket_dir: Path
) -> AsyncIterator[VaultClient]:
    """The same suite runs against the vault in-process and behind its socket."""
    if request.param == "local":
        yield vault
        return
    srv = make_server(vault, socket_dir)
    await srv.start()
    remote = RemoteVault(srv.path, max_frame_bytes=srv.max_frame_bytes)
    try:
        yield remote
    finally:
        await remote.close()
        await srv.close()
