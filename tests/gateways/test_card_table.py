"""Contract tests: the PortOne connector against the sandbox PG over HTTP, for every row
of the test-card table (docs/product.md §7)."""

from __future__ import annotations

import asyncio

import pytest

from ivr.domain.states import CardType
from ivr.errors import InvalidInput
from ivr.gateways.contract import (
    BillingKeyRequest,
    ChargeRequest,
    ChargeStatus,
    GatewayCharge,
    KeyedChargeRequest,
    PgState,
)
from ivr.gateways.declines import Decline, DeclineKind, DeclineReason
from ivr.gateways.errors import CardDeclined, DuplicateOrder, OutcomeUnknown
from ivr.gateways.portone import PortOneGateway
from ivr.gateways.sandbox.cards import BINS, TEST_CARDS, Scenario
from tests.gateways.support import Sandbox, card, luhn_complete, order

pytestmark = pytest.mark.anyio

# The table as docs/product.md §7 prints it; the sandbox must match it exactly.
PRODUCT_TABLE = {
    "4000000000000002": Scenario.hard_reject,
    "4000000000009995": Scenario.soft_decline,
    "4000000000009987": Scenario.lost_or_stolen,
    "4000000000000069": Scenario.expired,
    "4000000000000119": Scenario.pg_error,
    "4000000000003220": Scenario.unknown_first,
}


def test_the_sandbox_table_is_the_product_table() -> None:
    assert {c.number: c.scenario for c in TEST_CARDS} == PRODUCT_TABLE


async def register(pg: PortOneGateway, number: str, uid: str, **kw: str) -> None:
    await pg.register_billing_key(BillingKeyRequest(uid, card(number, **kw)))


async def refused(pg: PortOneGateway, number: str, uid: str, **kw: str) -> Decline:
    """The decline of a registration the sandbox refuses."""
    with pytest.raises(CardDeclined) as err:
        await register(pg, number, uid, **kw)
    return err.value.decline


async def test_any_other_luhn_valid_card_registers_and_pays(pg: PortOneGateway) -> None:
    key = await pg.register_billing_key(BillingKeyRequest("cus_ok", card("4111111111111111")))
    assert (key.customer_uid, key.issuer, key.last4) == ("cus_ok", "테스트카드", "1111")
    assert key.card_type is CardType.credit
    assert key.registered_at is not None

    oid = order()
    paid = await pg.charge_billing_key(
        ChargeRequest("cus_ok", oid, 53_000, "임플란트", installment_months=3, interest_free=True)
    )
    assert paid.status is ChargeStatus.succeeded
    assert paid.decline is None
    assert paid.order_id == oid
    assert paid.amount == 53_000
    assert paid.installment_months == 3
    assert paid.pg_tx_id
    assert paid.pg_tx_id.startswith("imp_")
    assert paid.approval_no
    assert len(paid.approval_no) == 8
    assert paid.card_last4 == "1111"
    assert paid.paid_at is not None

    keyed = await pg.keyed_charge(
        KeyedChargeRequest(card("4111111111111111"), order(), 1_000, "상품")
    )
    assert keyed.succeeded


@pytest.mark.parametrize(("prefix", "issuer"), [(p, name) for p, name, _ in BINS])
async def test_issuer_comes_from_the_bin_table(
    pg: PortOneGateway, prefix: str, issuer: str
) -> None:
    number = luhn_complete(prefix + "0" * 11)
    key = await pg.register_billing_key(BillingKeyRequest(f"cus_{prefix}", card(number)))
    assert key.issuer == issuer
    assert key.card_type is (CardType.check if prefix.startswith("5") else CardType.credit)


async def test_0002_hard_declines_on_register_and_charge(pg: PortOneGateway) -> None:
    d = await refused(pg, "4000000000000002", "cus_0002")
    assert (d.kind, d.reason, d.prompt_id) == (
        DeclineKind.hard, DeclineReason.rejected, "reg.failed.rejected")  # fmt: skip
    assert d.pg_code == "REJECT_CARD_PAYMENT"

    oid = order()
    result = await pg.keyed_charge(KeyedChargeRequest(card("4000000000000002"), oid, 5_000, "x"))
    assert result.status is ChargeStatus.failed
    assert result.decline is not None
    assert result.decline.prompt_id == "pay.failed.rejected"
    found = await pg.find(oid)
    assert found is not None
    assert found.state is PgState.failed
    assert found.decline is not None
    assert found.decline.reason is DeclineReason.rejected


async def test_9995_registers_then_soft_declines(pg: PortOneGateway, sandbox: Sandbox) -> None:
    await register(pg, "4000000000009995", "cus_9995")
    small = await pg.charge_billing_key(ChargeRequest("cus_9995", order(), 30_000, "월 이용료"))
    big = await pg.charge_billing_key(ChargeRequest("cus_9995", order(), 150_000, "연 이용료"))
    assert small.status is big.status is ChargeStatus.failed
    assert small.decline is not None
    assert big.decline is not None
    assert small.decline.reason is DeclineReason.insufficient_funds
    assert big.decline.reason is DeclineReason.limit_exceeded
    assert small.decline.kind is big.decline.kind is DeclineKind.soft
    assert small.decline.prompt_id == "pay.failed.insufficient_funds"
    assert small.decline.retryable
    assert (await sandbox.summary())["failed"] == 2


async def test_9987_lost_or_stolen(pg: PortOneGateway) -> None:
    d = await refused(pg, "4000000000009987", "cus_9987")
    assert d.reason is DeclineReason.lost_or_stolen
    assert d.kind is DeclineKind.hard
    assert d.prompt_id == "reg.failed.lost_or_stolen"
    keyed = await pg.keyed_charge(KeyedChargeRequest(card("4000000000009987"), order(), 900, "x"))
    assert keyed.decline is not None
    assert keyed.decline.reason is DeclineReason.lost_or_stolen


async def test_0069_expired_card(pg: PortOneGateway) -> None:
    d = await refused(pg, "4000000000000069", "cus_0069")
    assert d.reason is DeclineReason.expired_card
    assert d.prompt_id == "reg.failed.expired_card"
    keyed = await pg.keyed_charge(KeyedChargeRequest(card("4000000000000069"), order(), 900, "x"))
    assert keyed.decline is not None
    assert keyed.decline.reason is DeclineReason.expired_card
    # Any card past its expiry month is refused the same way.
    d = await refused(pg, "4111111111111111", "cus_old", expiry="2020-01")
    assert d.reason is DeclineReason.expired_card


async def test_0119_is_a_retryable_pg_error(pg: PortOneGateway, sandbox: Sandbox) -> None:
    with pytest.raises(OutcomeUnknown):
        await register(pg, "4000000000000119", "cus_0119")
    oid = order()
    for _ in range(2):  # retryable: the second try is just as safe
        with pytest.raises(OutcomeUnknown) as err:
            await pg.keyed_charge(KeyedChargeRequest(card("4000000000000119"), oid, 2_000, "x"))
        assert err.value.order_id == oid
    assert await pg.find(oid) is None  # the PG never recorded it
    ledger = await sandbox.ledger(oid)
    assert ledger["charge_requests"] == 2
    assert ledger["payments"] == []


async def test_3220_times_out_after_recording_then_find_says_paid(
    pg: PortOneGateway, sandbox: Sandbox
) -> None:
    await register(pg, "4000000000003220", "cus_3220")
    oid = order()
    request = ChargeRequest("cus_3220", oid, 12_000, "정기결제")
    with pytest.raises(OutcomeUnknown) as err:
        await pg.charge_billing_key(request)
    assert err.value.order_id == oid
    found = await pg.find(oid)
    assert found is not None
    assert found.state is PgState.paid
    assert found.amount == 12_000
    # The same order id again: PortOne refuses a paid merchant_uid ("이미 결제가 이뤄진 적이
    # 있는 merchant_uid로는 결제요청이 불가능합니다"): not a decline, an order to look up.
    with pytest.raises(DuplicateOrder) as dup:
        await pg.charge_billing_key(request)
    assert dup.value.order_id == oid
    ledger = await sandbox.ledger(oid)
    assert len(ledger["payments"]) == 1
    assert ledger["charge_requests"] == 2
    assert ledger["paid"] == 1
    assert (await sandbox.summary())["paid"] == 1
    # "first charge of *each* order": a new order times out again
    with pytest.raises(OutcomeUnknown):
        await pg.charge_billing_key(ChargeRequest("cus_3220", order(), 12_000, "정기결제"))


async def test_3220_keyed_charge_also_times_out_after_recording(pg: PortOneGateway) -> None:
    oid = order()
    with pytest.raises(OutcomeUnknown):
        await pg.keyed_charge(KeyedChargeRequest(card("4000000000003220"), oid, 7_000, "x"))
    found = await pg.find(oid)
    assert found is not None
    assert found.state is PgState.paid


async def test_password_00_is_invalid_password(pg: PortOneGateway, sandbox: Sandbox) -> None:
    d = await refused(pg, "4111111111111111", "cus_pw", password="00")
    assert (d.reason, d.kind, d.prompt_id, d.pg_code) == (
        DeclineReason.wrong_password, DeclineKind.hard, "reg.failed.wrong_password",
        "INVALID_PASSWORD")  # fmt: skip
    oid = order()
    keyed = await pg.keyed_charge(KeyedChargeRequest(card(password="00"), oid, 3_000, "x"))
    assert keyed.decline is not None
    assert keyed.decline.prompt_id == "pay.failed.wrong_password"
    assert keyed.pg_tx_id is None
    assert await pg.find(oid) is None


async def test_birth_000000_is_identity_mismatch(pg: PortOneGateway) -> None:
    d = await refused(pg, "4111111111111111", "cus_birth", birth="000000")
    assert d.reason is DeclineReason.identity_mismatch
    assert d.prompt_id == "reg.failed.identity_mismatch"
    # A 10-digit business registration number is accepted as the birth factor.
    await register(pg, "4111111111111111", "cus_corp", birth="1234567890")


async def test_check_cards_and_small_amounts_get_no_installments(pg: PortOneGateway) -> None:
    check = luhn_complete("531000000000000")
    key = await pg.register_billing_key(BillingKeyRequest("cus_check", card(check)))
    assert key.card_type is CardType.check
    assert key.issuer == "하나카드"
    refused = await pg.charge_billing_key(
        ChargeRequest("cus_check", order(), 120_000, "x", installment_months=3)
    )
    assert refused.decline is not None
    assert refused.decline.reason is DeclineReason.installment_unavailable
    assert refused.decline.prompt_id == "pay.failed.installment_unavailable"
    lump = await pg.charge_billing_key(ChargeRequest("cus_check", order(), 120_000, "x"))
    assert lump.succeeded
    assert lump.card_type is CardType.check
    await register(pg, "4111111111111111", "cus_credit")
    under = await pg.charge_billing_key(
        ChargeRequest("cus_credit", order(), 49_000, "x", installment_months=2)
    )
    assert under.decline is not None
    assert under.decline.reason is DeclineReason.installment_unavailable


async def test_a_number_failing_luhn_is_an_invalid_card(pg: PortOneGateway) -> None:
    d = await refused(pg, "4111111111111112", "cus_luhn")
    assert d.reason is DeclineReason.invalid_card


async def test_an_unknown_billing_key_is_a_hard_decline(pg: PortOneGateway) -> None:
    result = await pg.charge_billing_key(ChargeRequest("cus_nobody", order(), 1_000, "x"))
    assert result.decline is not None
    assert (result.decline.kind, result.decline.pg_code) == (
        DeclineKind.hard, "CUSTOMER_NOT_FOUND")  # fmt: skip


async def test_the_same_order_is_never_charged_twice(pg: PortOneGateway, sandbox: Sandbox) -> None:
    await register(pg, "4111111111111111", "cus_twice")
    oid = order()
    request = ChargeRequest("cus_twice", oid, 9_900, "x")
    results = await asyncio.gather(
        *(pg.charge_billing_key(request) for _ in range(5)), return_exceptions=True
    )
    paid = [r for r in results if isinstance(r, GatewayCharge) and r.succeeded]
    assert len(paid) == 1  # one request charged; the others were refused as duplicates
    assert all(isinstance(r, DuplicateOrder) for r in results if r not in paid)
    ledger = await sandbox.ledger(oid)
    assert len(ledger["payments"]) == 1
    assert ledger["charge_requests"] == 5
    found = await pg.find(oid)
    assert found is not None
    assert found.pg_tx_id == paid[0].pg_tx_id


async def test_a_failed_order_may_be_tried_again_under_its_order_id(
    pg: PortOneGateway, sandbox: Sandbox
) -> None:
    """PortOne keeps several payments under one merchant_uid: a failed one, then a paid
    one. The lookup reports the paid one (money moved), whatever the order."""
    await register(pg, "4111111111111111", "cus_again")
    oid = order()
    over = await pg.charge_billing_key(
        ChargeRequest("cus_again", oid, 9_900, "x", installment_months=3)  # under 50,000
    )
    assert over.decline is not None
    failed = await pg.find(oid)
    assert failed is not None
    assert failed.state is PgState.failed
    paid = await pg.charge_billing_key(ChargeRequest("cus_again", oid, 9_900, "x"))
    assert paid.succeeded
    found = await pg.find(oid)
    assert found is not None
    assert (found.state, found.pg_tx_id) == (PgState.paid, paid.pg_tx_id)
    ledger = await sandbox.ledger(oid)
    assert [p["status"] for p in ledger["payments"]] == ["paid", "failed"]  # newest first
    with pytest.raises(DuplicateOrder):  # and now it is paid, no more
        await pg.charge_billing_key(ChargeRequest("cus_again", oid, 9_900, "x"))
    assert (await sandbox.summary())["paid_amount"] == 9_900


async def test_a_keyed_charge_can_save_the_card(pg: PortOneGateway) -> None:
    keyed = await pg.keyed_charge(
        KeyedChargeRequest(card(), order(), 2_000, "x", save_as_customer_uid="cus_saved")
    )
    assert keyed.succeeded
    again = await pg.charge_billing_key(ChargeRequest("cus_saved", order(), 2_000, "x"))
    assert again.succeeded
    assert again.card_last4 == "1111"


# Each row of docs/product.md §7 and the test that plays it.
ROW_TESTS = {
    Scenario.approve: "test_any_other_luhn_valid_card_registers_and_pays",
    Scenario.hard_reject: "test_0002_hard_declines_on_register_and_charge",
    Scenario.soft_decline: "test_9995_registers_then_soft_declines",
    Scenario.lost_or_stolen: "test_9987_lost_or_stolen",
    Scenario.expired: "test_0069_expired_card",
    Scenario.pg_error: "test_0119_is_a_retryable_pg_error",
    Scenario.unknown_first: "test_3220_times_out_after_recording_then_find_says_paid",
    "password 00": "test_password_00_is_invalid_password",
    "birth 000000": "test_birth_000000_is_identity_mismatch",
    "check cards (BIN 5)": "test_check_cards_and_small_amounts_get_no_installments",
}


def test_every_row_of_the_card_table_has_a_contract_test() -> None:
    assert set(Scenario) <= set(ROW_TESTS)
    assert all(callable(globals().get(name)) for name in ROW_TESTS.values())


async def test_a_deleted_billing_key_charges_no_more(pg: PortOneGateway, sandbox: Sandbox) -> None:
    await register(pg, "4111111111111111", "cus_gone")
    customers = (await sandbox.summary())["customers"]
    assert await pg.delete_billing_key("cus_gone", reason="card deleted") is True
    assert (await sandbox.summary())["customers"] == customers - 1
    assert await pg.delete_billing_key("cus_gone", reason="card deleted") is False  # repeat
    assert await pg.delete_billing_key("cus_never", reason="card deleted") is False
    refused = await pg.charge_billing_key(ChargeRequest("cus_gone", order(), 1_000, "x"))
    assert refused.status is ChargeStatus.failed
    with pytest.raises(InvalidInput):
        await pg.delete_billing_key("cus/../x", reason="card deleted")
