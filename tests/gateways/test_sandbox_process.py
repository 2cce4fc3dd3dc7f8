"""``arspay sandbox-pg`` as a separate process: it serves the connector, stops cleanly
on SIGTERM, and its ledger survives a restart."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ivr.gateways.contract import BillingKeyRequest, ChargeRequest, PgState
from ivr.gateways.errors import DuplicateOrder
from tests.gateways.support import KEY, SECRET, card, connector, order

pytestmark = pytest.mark.anyio


@contextmanager
def sandbox_process(ledger: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSPAY_")}
    env.update(ARSPAY_CONFIG="/nonexistent/arspay.toml", ARSPAY_GATEWAY_API_KEY=KEY,
               ARSPAY_GATEWAY_API_SECRET=SECRET)  # fmt: skip
    with subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "sandbox-pg", "--port", "0", "--latency-ms", "5",
         "--ledger", str(ledger)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            assert found, f"no ready line: {line!r}"
            yield found.group(1)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
        assert proc.returncode == 0, err
        assert "Traceback" not in err


async def test_the_cli_sandbox_serves_and_keeps_its_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    oid = order()
    with sandbox_process(ledger) as url:
        async with connector(url) as pg:
            await pg.register_billing_key(BillingKeyRequest("cus_proc", card()))
            paid = await pg.charge_billing_key(ChargeRequest("cus_proc", oid, 77_000, "x"))
            assert paid.succeeded
    with sandbox_process(ledger) as url:  # restarted: tokens are gone, payments are not
        async with connector(url) as pg:
            found = await pg.find(oid)
            assert found is not None
            assert found.state is PgState.paid
            assert found.pg_tx_id == paid.pg_tx_id
            with pytest.raises(DuplicateOrder):  # still refused after the restart
                await pg.charge_billing_key(ChargeRequest("cus_proc", oid, 77_000, "x"))
        shown = arspay("--json", "gateway", "find", oid, base_url=url)
        assert shown.returncode == 0, shown.stderr
        row = json.loads(shown.stdout)[0]
        assert (row["state"], row["amount"], row["refundable"]) == ("paid", 77_000, 77_000)


def arspay(*args: str, base_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSPAY_")}
    env["ARSPAY_CONFIG"] = "/nonexistent/arspay.toml"
    if base_url:
        env.update(ARSPAY_GATEWAY_BASE_URL=base_url, ARSPAY_GATEWAY_API_KEY=KEY,
                   ARSPAY_GATEWAY_API_SECRET=SECRET)  # fmt: skip
    return subprocess.run([sys.executable, "-m", "ivr.cli", *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False)  # fmt: skip


def test_the_cli_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    out = arspay("sandbox-pg", "--ledger", str(tmp_path / "l.db"))
    assert out.returncode == 2
    assert "ARSPAY_GATEWAY_API_KEY" in out.stderr
    assert "Traceback" not in out.stderr


async def test_a_ledger_of_schema_1_is_upgraded_with_its_payments(tmp_path: Path) -> None:
    """Schema 1 kept one payment per merchant_uid (UNIQUE); schema 2 allows a failed
    order to be tried again. An old ledger file keeps its rows through the upgrade."""
    ledger = tmp_path / "old.db"
    old = sqlite3.connect(ledger)
    old.executescript(V1_PAYMENTS)
    old.execute(
        "INSERT INTO payments (imp_uid, merchant_uid, customer_uid, name, amount,"
        " cancel_amount, status, card_quota, pg_tid, scenario, started_at, paid_at,"
        " failed_at, cancelled_at, channel) VALUES ('imp_old', 'ord_old', 'cus_old', 'x',"
        " 5000, 0, 'failed', 0, 'sbx_1', 'approve', 1700000000, 0, 1700000000, 0, 'api')"
    )
    old.commit()
    old.close()
    with sandbox_process(ledger) as url:
        async with connector(url) as pg:
            found = await pg.find("ord_old")
            assert found is not None
            assert found.state is PgState.failed
            await pg.register_billing_key(BillingKeyRequest("cus_old", card()))
            paid = await pg.charge_billing_key(ChargeRequest("cus_old", "ord_old", 5_000, "x"))
            assert paid.succeeded  # a second payment under the failed order's merchant_uid
    conn = sqlite3.connect(ledger)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        rows = conn.execute("SELECT status FROM payments WHERE merchant_uid='ord_old'").fetchall()
    finally:
        conn.close()
    assert sorted(r[0] for r in rows) == ["failed", "paid"]


V1_PAYMENTS = """
CREATE TABLE payments (
    imp_uid TEXT PRIMARY KEY, merchant_uid TEXT NOT NULL UNIQUE, customer_uid TEXT,
    name TEXT, amount INTEGER NOT NULL, cancel_amount INTEGER NOT NULL, status TEXT NOT NULL,
    card_quota INTEGER NOT NULL, apply_num TEXT, pg_tid TEXT NOT NULL, card_name TEXT,
    card_code TEXT, card_masked TEXT, card_type INTEGER, scenario TEXT NOT NULL,
    fail_reason TEXT, started_at INTEGER NOT NULL, paid_at INTEGER NOT NULL,
    failed_at INTEGER NOT NULL, cancelled_at INTEGER NOT NULL, channel TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 1);
"""
