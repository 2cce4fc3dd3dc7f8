"""``arspay sandbox-pg`` as a separate process: it serves the connector, stops cleanly
on SIGTERM, and its ledger survives a restart."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ivr.gateways.contract import BillingKeyRequest, ChargeRequest, PgState
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
            await pg.issue_billing_key(BillingKeyRequest("cus_proc", card()))
            paid = await pg.charge_billing_key(ChargeRequest("cus_proc", oid, 77_000, "x"))
            assert paid.succeeded
    with sandbox_process(ledger) as url:  # restarted: tokens are gone, payments are not
        async with connector(url) as pg:
            found = await pg.find(oid)
            assert found is not None
            assert found.state is PgState.paid
            assert found.pg_tx_id == paid.pg_tx_id
            again = await pg.charge_billing_key(ChargeRequest("cus_proc", oid, 77_000, "x"))
            assert again.pg_tx_id == paid.pg_tx_id  # still idempotent after the restart
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
