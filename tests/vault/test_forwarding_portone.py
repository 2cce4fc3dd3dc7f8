"""Vault -> PortOne connector -> sandbox PG over HTTP: the plaintext card only exists
inside the vault call; the engine gets a billing key reference and a charge result."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.clock import FakeClock
from ivr.domain.ids import new_order_id
from ivr.gateways.vault_forwarding import VaultCardGateway
from tests.gateways.support import connector, running_sandbox
from tests.vault.vault_helpers import build_vault, make_kek
from vault.card import CardData as VaultCard
from vault.forwarding import Order

pytestmark = pytest.mark.anyio


async def test_billing_key_and_keyed_charge_through_the_vault(tmp_path: Path) -> None:
    async with running_sandbox(tmp_path / "ledger.db") as sandbox, connector(sandbox.url) as pg:
        kek = make_kek("file", tmp_path, None)
        vault = await build_vault(
            f"sqlite+aiosqlite:///{tmp_path / 'vault.db'}",
            kek.provider,
            FakeClock(),
            VaultCardGateway(pg),  # type: ignore[arg-type]
            audit_key_file=kek.audit_key_file,
        )
        try:
            meta = await vault.tokenize(
                "mer_1",
                VaultCard(pan="4111111111111111", expiry="1230", birth="880101"),
                who="test",
            )
            key = await vault.issue_billing_key(
                meta.token,
                "mer_1",
                password2="12",
                customer_uid="cu_vault_1",
                who="test",
                why="registration call",
            )
            assert key.ok
            assert key.customer_uid == "cu_vault_1"
            wrong = await vault.issue_billing_key(
                meta.token,
                "mer_1",
                password2="00",
                customer_uid="cu_vault_2",
                who="test",
                why="registration call",
            )
            assert (wrong.ok, wrong.decline_code) == (False, "wrong_password")
            order = new_order_id()
            charge = await vault.keyed_charge(
                meta.token,
                "mer_1",
                password2="12",
                order=Order(order, 53_000, "임플란트", 0),
                who="test",
                why="payment call",
            )
            assert charge.status == "succeeded"
            assert charge.approval_number
            # the PG's receipt link is not card data: it comes back through the vault
            slip = f"{sandbox.url}/sandbox/receipts/{charge.pg_transaction_id}"
            assert charge.receipt_url == slip
            [payment] = (await sandbox.ledger(order))["payments"]
            assert payment["status"] == "paid"
        finally:
            await vault.close()
            kek.provider.close()
