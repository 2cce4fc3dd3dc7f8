"""The sandbox's second identity-mismatch trigger, birth date ``000101`` (1 Jan 2000).

docs/product.md §7's ``000000`` is not a date, so the IVR's card entry and the vault refuse it
and the PG never sees it; ``000101`` is a valid YYMMDD that gets through both and plays
the same IDENTITY_MISMATCH at registration (and on a keyed charge). Over real HTTP to
the sandbox, directly and through the vault's forwarding."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.clock import FakeClock
from ivr.gateways.contract import BillingKeyRequest, KeyedChargeRequest
from ivr.gateways.declines import DeclineKind, DeclineReason
from ivr.gateways.errors import CardDeclined
from ivr.gateways.portone import PortOneGateway
from ivr.gateways.sandbox import cards
from ivr.gateways.vault_forwarding import VaultCardGateway
from tests.gateways.support import card, connector, order, running_sandbox
from vault.card import CardData as VaultCard
from vault.card import random_into
from vault.errors import InvalidBirthOrBrn
from vault.evidence import EvidenceKeyFile
from vault.kek.file import FileKekProvider
from vault.service import LocalVault
from vault.store import VaultStore
from vault.tokens import Fingerprinter
from vault.validation import validate_birth_or_brn

pytestmark = pytest.mark.anyio

TRIGGER = "000101"


def test_000101_is_a_valid_birth_date_and_000000_is_not() -> None:
    validate_birth_or_brn(TRIGGER)  # reaches the PG through the IVR and the vault
    with pytest.raises(InvalidBirthOrBrn):
        validate_birth_or_brn("000000")  # refused before any PG sees it
    assert sorted(cards.BIRTH_MISMATCHES) == ["000000", TRIGGER]


async def test_registration_with_000101_is_an_identity_mismatch(pg: PortOneGateway) -> None:
    with pytest.raises(CardDeclined) as err:
        await pg.register_billing_key(BillingKeyRequest("cus_000101", card(birth=TRIGGER)))
    d = err.value.decline
    assert (d.reason, d.kind, d.prompt_id, d.pg_code) == (
        DeclineReason.identity_mismatch, DeclineKind.hard, "reg.failed.identity_mismatch",
        "IDENTITY_MISMATCH")  # fmt: skip
    keyed = await pg.keyed_charge(KeyedChargeRequest(card(birth=TRIGGER), order(), 3_000, "x"))
    assert keyed.decline is not None
    assert keyed.decline.reason is DeclineReason.identity_mismatch
    assert keyed.pg_tx_id is None


@pytest.mark.parametrize("birth", ["000102", "991231", "000229", "880101"])
async def test_other_valid_dates_register(pg: PortOneGateway, birth: str) -> None:
    key = await pg.register_billing_key(BillingKeyRequest(f"cus_{birth}", card(birth=birth)))
    assert key.customer_uid == f"cus_{birth}"


async def test_000101_through_the_vault_is_an_identity_mismatch(tmp_path: Path) -> None:
    async with running_sandbox(tmp_path / "ledger.db") as sandbox, connector(sandbox.url) as pg:
        kek = FileKekProvider(tmp_path / "keys" / "kek.key")
        kek.generate_new()
        vault = LocalVault(
            VaultStore(f"sqlite+aiosqlite:///{tmp_path / 'vault' / 'vault.db'}"),
            kek,
            Fingerprinter(random_into(32)),
            clock=FakeClock(),
            audit_key_file=EvidenceKeyFile(tmp_path / "keys" / "audit.key", ledger="vault-audit"),
            gateway=VaultCardGateway(pg),
        )
        await vault.start()
        try:
            results = {}
            for birth in (TRIGGER, "000102"):
                meta = await vault.tokenize(
                    "mer_1", VaultCard("4111111111111111", "1230", birth), who="test"
                )
                results[birth] = await vault.issue_billing_key(
                    meta.token, "mer_1", password2="12", customer_uid=f"cu_{birth}",
                    who="test", why="registration call",
                )  # fmt: skip
        finally:
            await vault.close()
    assert (results[TRIGGER].ok, results[TRIGGER].decline_code) == (False, "identity_mismatch")
    assert results[TRIGGER].decline_kind == "hard"
    assert results["000102"].ok
