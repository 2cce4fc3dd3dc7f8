"""Shared set-up for payment tests: a merchant, customers and cards registered at the
sandbox PG (billing keys), on an engine database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from ivr.domain.ids import new_id
from ivr.gateways.contract import BillingKeyRequest, Gateway
from ivr.store.db import Database
from ivr.store.tables import Card, Customer, Merchant
from tests.gateways.support import KEY, SECRET
from tests.gateways.support import card as card_data

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def merchant_with_cards(
    db: Database, pg: Gateway, numbers: list[str], *, merchant_id: str | None = None
) -> tuple[str, dict[str, str]]:
    """A merchant (``merchant_id``: one made before) and one registered card per
    number; returns (merchant_id, number -> card_id)."""
    mid = merchant_id or new_id("mer")
    cards: dict[str, str] = {}
    if merchant_id is None:
        async with db.transaction() as s:
            s.add(Merchant(id=mid, name="행복치과", status="active", settings={}, created_at=NOW))
    for i, number in enumerate(numbers):
        cid, card_id, uid = new_id("cus"), new_id("card"), f"cu_{new_id('cus')}"
        await pg.register_billing_key(BillingKeyRequest(uid, card_data(number)))
        async with db.transaction() as s:
            s.add(
                Customer(
                    id=cid,
                    merchant_id=mid,
                    external_ref=None,
                    name="",
                    mobile=f"0101234{i:04d}",
                    created_at=NOW,
                )
            )
            await s.flush()
            s.add(
                Card(
                    id=card_id,
                    merchant_id=mid,
                    customer_id=cid,
                    vault_token=f"tok_{card_id}",
                    fingerprint=None,
                    bin6=number[:6],
                    last4=number[-4:],
                    issuer="테스트카드",
                    card_type="credit",
                    owner_type="personal",
                    billing_key_ref=uid,
                    status="active",
                    created_at=NOW,
                )
            )
        cards[number] = card_id
    return mid, cards


LEGACY_FAULTS = ["--error-rate", "0.02", "--timeout-rate", "0.05", "--hang-ms", "1500"]


def start_sandbox(
    ledger: Path, *, faults: str | None = None, seed: int = 7, port: int = 0
) -> tuple[subprocess.Popen[str], str]:
    """``arspay sandbox-pg`` as its own process (latency 5 ms); its URL. ``faults``:
    orderings by probability (``--faults``); by default 2 % of payment calls answer 500
    and 5 % of charges are recorded then dropped after 1.5 s."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSPAY_")}
    env |= {"ARSPAY_CONFIG": "/nonexistent.toml", "ARSPAY_GATEWAY_API_KEY": KEY,
            "ARSPAY_GATEWAY_API_SECRET": SECRET}  # fmt: skip
    chosen = LEGACY_FAULTS if faults is None else ["--faults", faults]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "sandbox-pg", "--port", str(port), "--latency-ms", "5",
         "--seed", str(seed), "--ledger", str(ledger), *chosen],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.stdout.readline())
    assert found, "the sandbox PG did not start"
    return proc, found.group(1)
