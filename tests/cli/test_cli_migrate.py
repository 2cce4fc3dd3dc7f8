"""``arspay cards migrate`` / ``cards migrations`` as a person runs them: a card at
another PG account moved back to the default one (the sandbox PG as its own process),
plain progress lines without a terminal; and the progress line renderer."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from pathlib import Path

from ivr.cards.sweep import billing_key_uid
from ivr.cli.migrate_cmd import Lines
from ivr.clock import SystemClock
from ivr.gateways.contract import BillingKeyRequest
from ivr.pg_accounts.migration import Progress
from ivr.pg_accounts.store import PgAccounts, accounts_key
from ivr.runtime import open_vault_client
from ivr.settings import load_settings
from ivr.store.db import Database
from ivr.store.tables import Card, Customer, Merchant
from tests.cli.test_cli import arspay
from tests.gateways.support import KEY, SECRET, card, connector
from tests.payments.support import start_sandbox
from tests.stack import engine_env
from vault.card import CardData as VaultCard
from vault.factory import init_keys


def test_plain_lines_are_few() -> None:
    out = io.StringIO()
    lines = Lines(out, every=3600)
    lines(Progress(total=10, done=0, failed=0, needs_payer=0, open=10))
    lines(Progress(total=10, done=5, failed=0, needs_payer=0, open=5))  # within the period
    lines(Progress(total=10, done=9, failed=1, needs_payer=0, open=0), final=True)
    assert out.getvalue().splitlines() == [
        "migrated 0/10: done 0, failed 0, needs payer 0, open 10",
        "migrated 10/10: done 9, failed 1, needs payer 0, open 0",
    ]


async def _setup(env: dict[str, str], url: str, sandbox: str) -> tuple[str, str]:
    settings = load_settings(env={**env, "ARSPAY_DATABASE_URL": url})
    init_keys(settings)
    db = Database(url)
    vault = await open_vault_client(settings)
    try:
        meta = await vault.tokenize(
            "mer_1", VaultCard(pan="4111111111111111", expiry="1230", birth="880101"), who="t"
        )
        async with connector(sandbox) as pg:
            await pg.register_billing_key(BillingKeyRequest("cu_old_1", card()))
        gw = settings.gateway
        accounts = PgAccounts(db, _clock(), accounts_key(gw, settings.paths.var_dir), gw)
        await accounts.create("sandbox-a", actor="t", kind="sandbox", base_url=sandbox,
                              api_key=KEY, api_secret=SECRET,
                              options={"channel_key": gw.channel_key})  # fmt: skip
        now = _clock().now()
        async with db.transaction() as s:
            s.add(Merchant(id="mer_1", name="행복치과", status="active", settings={},
                           created_at=now))  # fmt: skip
            await s.flush()
            s.add(Customer(id="cus_1", merchant_id="mer_1", external_ref=None, name="",
                           mobile="01012345678", created_at=now))  # fmt: skip
            await s.flush()
            s.add(Card(id="card_1", merchant_id="mer_1", customer_id="cus_1",
                       vault_token=meta.token, fingerprint=None, bin6="411111", last4="1111",
                       issuer="테스트카드", card_type="credit", owner_type="personal",
                       billing_key_ref="cu_old_1", status="active", created_at=now,
                       pg_account_id="sandbox-a"))  # fmt: skip
        return meta.token, "card_1"
    finally:
        await vault.close()
        await db.close()


def _clock() -> SystemClock:
    return SystemClock()


async def _card(url: str) -> Card:
    db = Database(url)
    try:
        async with db.sessions() as s:
            row = await s.get(Card, "card_1")
        assert row is not None
        return row
    finally:
        await db.close()


def test_cards_migrate_moves_a_card_and_lists_the_batch(
    tmp_path: Path, sqlite_template: Path
) -> None:
    shutil.copy(sqlite_template, tmp_path / "arspay.db")
    url = f"sqlite+aiosqlite:///{tmp_path / 'arspay.db'}"
    proc, sandbox = start_sandbox(tmp_path / "ledger.db", faults="")
    try:
        env = engine_env(tmp_path, sandbox)
        token, _ = asyncio.run(_setup(env, url, sandbox))
        dry = arspay("--json", "cards", "migrate", "--merchant", "mer_1", "--to", "default",
                     "--dry-run", url=url, env=env)  # fmt: skip
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout)[0]["would_move"] == 1
        out = arspay("--json", "cards", "migrate", "--merchant", "mer_1", "--to", "default",
                     "--concurrency", "2", url=url, env=env)  # fmt: skip
        assert out.returncode == 0, out.stderr
        [row] = json.loads(out.stdout)
        assert (row["status"], row["done"], row["total"]) == ("finished", 1, 1)
        assert "migrated 1/1: done 1" in out.stderr  # plain lines: no terminal here
        moved = asyncio.run(_card(url))
        assert moved.pg_account_id is None
        assert moved.billing_key_ref == billing_key_uid(token)
        listed = arspay("--json", "cards", "migrations", "--merchant", "mer_1", url=url, env=env)
        assert [b["id"] for b in json.loads(listed.stdout)] == [row["id"]]
        # and back to a stored account: the vault forwards to that account's route
        back = arspay("--json", "cards", "migrate", "--merchant", "mer_1", "--to", "sandbox-a",
                      url=url, env=env)  # fmt: skip
        assert back.returncode == 0, back.stderr
        assert json.loads(back.stdout)[0]["done"] == 1
        returned = asyncio.run(_card(url))
        assert returned.pg_account_id == "sandbox-a"
        assert returned.billing_key_ref == billing_key_uid(token, "sandbox-a")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
