"""A stored card re-issued at another PG account has no password (never stored): the
billing key is asked without it — the field left out of both wires — and a PG that
wants it refuses with ``password_required`` (docs/portone.md "Moving cards between PG
accounts"). Keyed charges still need it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.clock import FakeClock
from ivr.errors import InvalidInput
from ivr.gateways.contract import BillingKeyRequest, KeyedCard, KeyedChargeRequest
from ivr.gateways.declines import DeclineReason
from ivr.gateways.errors import CardDeclined
from ivr.gateways.portone import wire
from ivr.gateways.portone.errors import decline_reason
from ivr.gateways.portone.pgs import RULES, rules_for
from ivr.gateways.portone_v2 import wire as wire_v2
from ivr.gateways.sandbox import cards
from ivr.gateways.vault_forwarding import VaultCardGateway
from ivr.settings import SANDBOX_CHANNEL_KEY
from tests.gateways.support import KEY, SECRET, connector, running_sandbox
from tests.gateways.v2_support import connector_v2
from tests.vault.vault_helpers import build_vault, make_kek
from vault.card import CardData as VaultCard
from vault.errors import InvalidPassword
from vault.forwarding import Order

pytestmark = pytest.mark.anyio

PAN = "4111111111111111"


def card(password: str = "") -> KeyedCard:
    return KeyedCard(number=PAN, expiry="2030-12", birth="880101", password_2digits=password)


def test_a_card_without_password_issues_keys_but_never_charges() -> None:
    assert not card().has_password
    assert card("12").has_password
    with pytest.raises(InvalidInput):
        card("1")
    with pytest.raises(InvalidInput, match="password"):
        KeyedChargeRequest(card=card(), order_id="o1", amount=1_000, order_name="x")
    KeyedChargeRequest(card=card("12"), order_id="o1", amount=1_000, order_name="x")


def test_both_wires_leave_the_password_out() -> None:
    account = wire.Account(channel_key="ch")
    assert "pwd_2digit" not in wire.billing_key_body(card(), account)
    assert wire.billing_key_body(card("12"), account)["pwd_2digit"] == "12"
    assert "passwordTwoDigits" not in wire_v2.credential(card())
    assert wire_v2.credential(card("12"))["passwordTwoDigits"] == "12"


def test_the_pg_table_says_who_wants_the_password() -> None:
    wants = {code for code, r in RULES.items() if r.register_password is True}
    assert wants == {"ksnet", "kcp", "nice_v2", "smartro_v2"}
    assert RULES["welcome"].register_password is False
    assert rules_for("").register_password is None  # not documented: the PG decides
    assert decline_reason(cards.PASSWORD_REQUIRED.text) is DeclineReason.password_required
    assert (
        decline_reason("[X] 카드 비밀번호 앞 2자리는 필수입니다") is DeclineReason.password_required
    )
    assert decline_reason("[INVALID_PASSWORD] x") is DeclineReason.wrong_password


async def test_sandbox_issues_without_password_unless_its_pg_wants_it(tmp_path: Path) -> None:
    async with running_sandbox(tmp_path / "a.db") as sandbox, connector(sandbox.url) as pg:
        key = await pg.register_billing_key(BillingKeyRequest("cu_nopwd_1", card()))
        assert key.customer_uid == "cu_nopwd_1"
    async with running_sandbox(tmp_path / "b.db", pg="ksnet") as sandbox:
        body = {"card_number": PAN, "expiry": "2030-12", "birth": "880101",
                "channel_key": SANDBOX_CHANNEL_KEY}  # fmt: skip
        async with sandbox.http.post(
            f"{sandbox.url}/users/getToken", json={"imp_key": KEY, "imp_secret": SECRET}
        ) as resp:
            token = (await resp.json())["response"]["access_token"]
        async with sandbox.http.post(
            f"{sandbox.url}/subscribe/customers/cu_raw",
            json=body,
            headers={"Authorization": token},
        ) as resp:
            answer = await resp.json()
        assert answer["code"] == -1
        assert answer["message"] == cards.PASSWORD_REQUIRED.text
        # the connector knows KSNET wants it: refused without a request
        async with connector(sandbox.url, pg="ksnet", product_type="real") as pg:
            with pytest.raises(CardDeclined) as caught:
                await pg.register_billing_key(BillingKeyRequest("cu_nopwd_2", card()))
            assert caught.value.decline.reason is DeclineReason.password_required
            assert caught.value.decline.pg_code == "arspay:password_required"
            assert await pg.register_billing_key(BillingKeyRequest("cu_nopwd_3", card("12")))
        # V2 (the channel's PG unknown to the connector): the sandbox's refusal maps
        async with connector_v2(sandbox.url) as v2:
            with pytest.raises(CardDeclined) as caught:
                await v2.register_billing_key(BillingKeyRequest("cu_nopwd_4", card()))
            assert caught.value.decline.reason is DeclineReason.password_required


async def test_the_vault_issues_without_password_and_audits_why(tmp_path: Path) -> None:
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
                "mer_1", VaultCard(pan=PAN, expiry="1230", birth="880101"), who="test"
            )
            key = await vault.issue_billing_key(meta.token, "mer_1", password2="",
                                                customer_uid="cu_moved", who="test",
                                                why="card migration")  # fmt: skip
            assert key.ok
            assert key.customer_uid == "cu_moved"
            with pytest.raises(InvalidPassword):
                await vault.keyed_charge(meta.token, "mer_1", password2="",
                                         order=Order("o_nopwd", 1_000, "x", 0), who="test",
                                         why="payment call")  # fmt: skip
            whys = [e.why for e in await vault.audit(token=meta.token)]
            assert "card migration" in whys
        finally:
            await vault.close()
            kek.provider.close()
