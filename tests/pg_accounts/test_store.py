"""PG accounts in the database: sealed secrets, masked display, validation, routes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.clock import FakeClock
from ivr.errors import Conflict, InvalidInput, NotFound
from ivr.gateways.config import GatewaySettings
from ivr.merchants.service import MerchantService
from ivr.pg_accounts.model import DEFAULT, AccountStatus
from ivr.pg_accounts.store import PgAccounts, Routes, accounts_key
from ivr.store.db import Database
from ivr.store.tables import AuditLog, PgAccount

pytestmark = pytest.mark.anyio

SECRET = "sk_live_CANARY_0123456789abcdef"


@pytest.fixture
def accounts(db: Database, clock: FakeClock, tmp_path: Path) -> PgAccounts:
    base = GatewaySettings()
    return PgAccounts(db, clock, accounts_key(base, tmp_path), base)


async def test_secrets_are_sealed_and_masked(accounts: PgAccounts, db: Database) -> None:
    made = await accounts.create(
        "ksnet-main", actor="test", kind="portone", api_key="imp_1234567890",
        api_secret=SECRET, options={"channel_key": "channel-key-1", "pg": "ksnet"},
    )  # fmt: skip
    assert SECRET not in repr(made)
    got = await accounts.get("ksnet-main")
    assert got.api_secret == SECRET
    assert got.options["pg"] == "ksnet"
    assert got.base_url == "https://api.iamport.kr"
    shown = got.shown()
    assert SECRET not in str(shown)
    assert shown["api_secret"].endswith("cdef")
    async with db.sessions() as s:
        row = (await s.scalars(select(PgAccount))).one()
        audits = (await s.scalars(select(AuditLog))).all()
    assert SECRET not in row.secrets_sealed
    assert SECRET not in str(row.options)
    assert all(SECRET not in str(a.details) for a in audits)
    assert [a.action for a in audits] == ["pg_account.create"]


async def test_a_sealed_secret_does_not_move_to_another_row(
    accounts: PgAccounts, db: Database
) -> None:
    await accounts.create("one-acct", actor="t", kind="sandbox", api_key="k", api_secret="s1")
    await accounts.create("two-acct", actor="t", kind="sandbox", api_key="k", api_secret="s2")
    async with db.transaction() as s:
        one = await s.get(PgAccount, "one-acct")
        two = await s.get(PgAccount, "two-acct")
        assert one is not None
        assert two is not None
        two.secrets_sealed = one.secrets_sealed  # a DB admin copies a secret across
    with pytest.raises(Exception, match="does not open"):
        await accounts.get("two-acct")


async def test_refuses_what_the_settings_would(accounts: PgAccounts) -> None:
    with pytest.raises(InvalidInput, match="channel_key"):
        await accounts.create("no-chan", actor="t", kind="portone", api_key="k", api_secret="s")
    with pytest.raises(InvalidInput, match="kind"):
        await accounts.create("bad-kind", actor="t", kind="toss")
    with pytest.raises(InvalidInput, match="id"):
        await accounts.create(DEFAULT, actor="t", kind="sandbox")
    with pytest.raises(InvalidInput, match="options"):
        await accounts.create("opt-acct", actor="t", kind="sandbox", options={"colour": "red"})
    await accounts.create("dup-acct", actor="t", kind="sandbox", api_key="k", api_secret="s")
    with pytest.raises(Conflict):
        await accounts.create("dup-acct", actor="t", kind="sandbox")


async def test_update_keeps_secrets_left_out(accounts: PgAccounts, db: Database) -> None:
    await accounts.create("upd-acct", actor="t", kind="sandbox", api_key="k", api_secret=SECRET)
    changed = await accounts.update("upd-acct", actor="t", name="Backup", api_secret="")
    assert changed.api_secret == SECRET
    assert changed.name == "Backup"
    changed = await accounts.update("upd-acct", actor="t", api_secret="new-secret-value")
    assert (await accounts.get("upd-acct")).api_secret == "new-secret-value"
    with pytest.raises(Conflict):
        await accounts.update(DEFAULT, actor="t", name="x")
    with pytest.raises(NotFound):
        await accounts.update("nope-acct", actor="t", name="x")


async def test_routes_and_disabling(accounts: PgAccounts, db: Database, clock: FakeClock) -> None:
    m = await MerchantService(db, clock).create("가맹점")
    assert (await accounts.routes(m.id)).primary == DEFAULT
    await accounts.create("backup-pg", actor="t", kind="sandbox", api_key="k", api_secret="s")
    routes = await accounts.set_routes(m.id, primary=DEFAULT, secondary="backup-pg", actor="t")
    assert (await accounts.routes(m.id)) == routes
    assert routes.primary == DEFAULT
    assert routes.secondary == "backup-pg"
    with pytest.raises(InvalidInput):
        await accounts.set_routes(m.id, primary="backup-pg", secondary="backup-pg", actor="t")
    with pytest.raises(Conflict, match="route"):
        await accounts.update("backup-pg", actor="t", status="disabled")
    await accounts.set_routes(m.id, primary=DEFAULT, secondary=None, actor="t")
    off = await accounts.update("backup-pg", actor="t", status="disabled")
    assert off.status is AccountStatus.disabled
    with pytest.raises(Conflict, match="disabled"):
        await accounts.set_routes(m.id, primary="backup-pg", secondary=None, actor="t")
    assert [a.id for a in await accounts.list()] == [DEFAULT, "backup-pg"]


async def test_default_can_be_the_secondary(
    accounts: PgAccounts, clock: FakeClock, db: Database
) -> None:
    """NULL is "no secondary": ``default`` as the secondary is kept by its name."""
    m = await MerchantService(db, clock).create("가맹점")
    await accounts.create("main-pg", actor="t", kind="sandbox", api_key="k", api_secret="s")
    await accounts.set_routes(m.id, primary="main-pg", secondary=DEFAULT, actor="t")
    assert await accounts.routes(m.id) == Routes(primary="main-pg", secondary=DEFAULT)
    await accounts.set_routes(m.id, primary="main-pg", secondary=None, actor="t")
    assert (await accounts.routes(m.id)).secondary is None


async def test_typed_texts_refuse_card_numbers(accounts: PgAccounts) -> None:
    for bad in ("4000056655665556", "4000 0566 5566 5556"):
        with pytest.raises(InvalidInput, match="card number") as refused:
            await accounts.create(bad.replace(" ", ""), actor="t", kind="sandbox")
        assert bad not in str(refused.value)
        with pytest.raises(InvalidInput, match="name must not contain"):
            await accounts.create("ok-acct", actor="t", kind="sandbox", name=bad)
    # PortOne v1's REST API key is 16 digits: an identifier, kept (and shown masked)
    made = await accounts.create("v1-acct", actor="t", kind="sandbox", api_key="1234567890123456")
    assert made.shown()["api_key"] == "••••3456"
