"""Card migration throughput between two sandbox PG accounts (two sandbox processes,
30 ms latency each): ``arspay cards migrate`` without the CLI.

    .venv/bin/python bench/migrate.py [--cards 10000] [--concurrency 64]

Setup: N cards tokenized in the vault (key-file KEK, SQLite) and registered at account
A (billing keys issued at sandbox A); their rows in the engine database (SQLite) at the
default account, which is A. Then the migration to account B: per card the vault
re-issues the key at B without the password (the engine names B's route; the vault
builds B's gateway from it, as in production), the card switches (one transaction), the
old key is deleted at A (the engine's GatewayBook: each account behind its breaker).
Printed in the same run: the sandbox ceiling — the same PG calls per card
(a billing key issued at B, one deleted at A) straight to the sandboxes at the same
concurrency, no engine, no vault — the migration's cards/s and their ratio.
Goal (issue #27 item 5): >= 200 cards/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.clock import SystemClock  # noqa: E402
from ivr.domain.ids import new_id  # noqa: E402
from ivr.gateways.config import GatewaySettings  # noqa: E402
from ivr.gateways.contract import BillingKeyRequest, Gateway  # noqa: E402
from ivr.gateways.factory import gateway_for_route  # noqa: E402
from ivr.gateways.vault_forwarding import VaultCardGateway  # noqa: E402
from ivr.pg_accounts.book import GatewayBook  # noqa: E402
from ivr.pg_accounts.migration import CardMigrator, Progress  # noqa: E402
from ivr.pg_accounts.store import PgAccounts, accounts_key  # noqa: E402
from ivr.store import migrate  # noqa: E402
from ivr.store.db import Database  # noqa: E402
from ivr.store.tables import Card, Customer, Merchant  # noqa: E402
from tests.gateways.support import KEY, SECRET, card, connector, luhn_complete  # noqa: E402
from vault.card import CardData, random_into  # noqa: E402
from vault.clock import WallClock  # noqa: E402
from vault.evidence import EvidenceKeyFile  # noqa: E402
from vault.kek.file import FileKekProvider  # noqa: E402
from vault.service import LocalVault  # noqa: E402
from vault.store import VaultStore  # noqa: E402
from vault.tokens import Fingerprinter  # noqa: E402

B = "sandbox-b"
MERCHANT = "mer_bench"


def start_sandbox(ledger: Path) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSPAY_")}
    env |= {"ARSPAY_CONFIG": "/nonexistent.toml", "ARSPAY_GATEWAY_API_KEY": KEY,
            "ARSPAY_GATEWAY_API_SECRET": SECRET}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "sandbox-pg", "--port", "0", "--latency-ms", "30",
         "--ledger", str(ledger)],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.stdout.readline())
    assert found, "sandbox did not start"
    return proc, found.group(1)


async def gather_limited(n: int, concurrency: int, one: Any) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def limited(i: int) -> None:
        async with gate:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(limited(i) for i in range(n)))
    return n / (time.perf_counter() - started)


async def ceiling(a: Gateway, b: Gateway, n: int, concurrency: int) -> float:
    """Per card what the migration asks of the PGs: a key issued at B, one deleted at A."""

    async def one(i: int) -> None:
        await b.register_billing_key(BillingKeyRequest(f"cu_ceiling_{i}", card(password="")))
        await a.delete_billing_key(f"cu_ceiling_{i}", reason="ceiling")

    return await gather_limited(n, concurrency, one)


async def setup(db: Database, vault: LocalVault, a: Gateway, n: int, concurrency: int) -> None:
    await migrate.upgrade(db)
    numbers = [luhn_complete(f"411111{i:09d}") for i in range(n)]
    tokens = [""] * n

    async def register(i: int) -> None:
        meta = await vault.tokenize(MERCHANT, CardData(pan=numbers[i], expiry="1230",
                                                       birth="880101"), who="bench")  # fmt: skip
        tokens[i] = meta.token
        await a.register_billing_key(BillingKeyRequest(f"cu_a_{i}", card(numbers[i])))

    rate = await gather_limited(n, concurrency, register)
    print(f"setup: {n} cards tokenized and registered at A ({rate:,.0f}/s)", file=sys.stderr)
    now = SystemClock().now()
    async with db.transaction() as s:
        s.add(Merchant(id=MERCHANT, name="bench", status="active", settings={}, created_at=now))
        await s.flush()
        for i in range(n):
            cid = new_id("cus")
            s.add(Customer(id=cid, merchant_id=MERCHANT, external_ref=None, name="",
                           mobile="01012345678", created_at=now))  # fmt: skip
            s.add(Card(id=new_id("card"), merchant_id=MERCHANT, customer_id=cid,
                       vault_token=tokens[i], fingerprint=None, bin6=numbers[i][:6],
                       last4=numbers[i][-4:], issuer="테스트카드", card_type="credit",
                       owner_type="personal", billing_key_ref=f"cu_a_{i}", status="active",
                       created_at=now))  # fmt: skip


async def main(n: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="arspay-bench-migrate-") as tmp:
        work = Path(tmp)
        (sa, url_a), (sb, url_b) = start_sandbox(work / "a.db"), start_sandbox(work / "b.db")
        kek = FileKekProvider(work / "kek.key")
        kek.generate_new()
        db = Database(f"sqlite+aiosqlite:///{work}/engine.db", pool_size=concurrency + 4)
        try:
            async with connector(url_a, timeout_s=10.0) as a, connector(url_b, timeout_s=10.0) as b:
                base = GatewaySettings(kind="sandbox", base_url=url_a, api_key=KEY,
                                       api_secret=SECRET, timeout_s=10.0)  # fmt: skip
                routed = VaultCardGateway(a, lambda route: gateway_for_route(route, base))
                audit_key = EvidenceKeyFile(work / "audit.key", ledger="vault-audit")
                vault = LocalVault(VaultStore(f"sqlite+aiosqlite:///{work}/vault.db", pool_size=10),
                                   kek, Fingerprinter(random_into(32)), clock=WallClock(),
                                   gateway=routed, rotation_batch=500,
                                   audit_key_file=audit_key)  # fmt: skip
                await vault.start()
                try:
                    await setup(db, vault, a, n, concurrency)
                    top = await ceiling(a, b, min(n, 5_000), concurrency)
                    clock = SystemClock()
                    accounts = PgAccounts(db, clock, accounts_key(base, work), base)
                    await accounts.create(B, actor="bench", kind="sandbox", base_url=url_b,
                                          api_key=KEY, api_secret=SECRET)  # fmt: skip
                    book = GatewayBook(accounts, clock, default=a)
                    migrator = CardMigrator(db, clock, vault, book, known=accounts,
                                            concurrency=concurrency)  # fmt: skip
                    last: list[Progress] = []
                    started = time.perf_counter()
                    batch, final = await migrator.migrate(MERCHANT, B, actor="bench",
                                                          progress=last.append)  # fmt: skip
                    rate = final.done / (time.perf_counter() - started)
                    await book.aclose()
                finally:
                    await vault.close()
            print(f"{'setup':34} {'cards':>7} {'cards/s':>9} {'/ceiling':>9}")
            print(f"{'sandbox ceiling (no engine/vault)':34} {min(n, 5_000):>7} {top:>9,.0f} "
                  f"{1:>9.2f}")  # fmt: skip
            print(f"{'migration A -> B, SQLite':34} {final.done:>7} {rate:>9,.0f} "
                  f"{rate / top:>9.2f}")  # fmt: skip
            print(f"batch {batch.status}: done {final.done}, failed {final.failed}, needs payer "
                  f"{final.needs_payer}, open {final.open}; {len(last)} progress reports; "
                  f"concurrency {concurrency}, sandbox latency 30 ms")  # fmt: skip
            print(
                "per card: vault decrypt + key issued at B (no password), switch "
                "transaction, old key deleted at A; ceiling: the same two PG calls per card"
            )
            print("goal: >= 200 cards/s (issue #27 item 5)")
        finally:
            await db.close()
            kek.close()
            for proc in (sa, sb):
                proc.terminate()
                proc.communicate(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(main(args.cards, args.concurrency))
