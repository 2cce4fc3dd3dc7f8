"""The charge terms (ivr/domain/terms.py): the minimum and maximum charge, the months of
an installment plan and when installments are possible — and that every layer asks
them, in one wording, and the copies outside ``ivr`` stay equal to them."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import vault.service
from ivr.api.schemas import ChargeIn
from ivr.domain import terms
from ivr.domain.terms import (
    INSTALLMENT_FROM,
    MAX_AMOUNT,
    MIN_AMOUNT,
    MONTHS_RULE,
    check_amount,
    check_installments,
    check_months,
    installments_possible,
    is_amount,
    is_months,
)
from ivr.errors import InvalidInput
from ivr.gateways.contract import ChargeRequest
from ivr.gateways.sandbox import cards
from ivr.merchants.policy import InterestFree, MerchantPolicy
from ivr.payments.service import check_terms

AMOUNT_RULE = f"amount must be an integer between {MIN_AMOUNT} and {MAX_AMOUNT} KRW"
IVR = Path(__file__).resolve().parents[2] / "ivr"


# ---------------------------------------------------------------- the values


def test_the_product_values() -> None:
    assert (MIN_AMOUNT, INSTALLMENT_FROM) == (100, 50_000)
    assert (terms.LUMP_SUM, terms.MIN_INSTALLMENT_MONTHS, terms.MAX_INSTALLMENT_MONTHS) == (
        0,
        2,
        36,
    )
    assert MIN_AMOUNT <= terms.MAX_API_AMOUNT <= MAX_AMOUNT


# ---------------------------------------------------------------- amounts


@pytest.mark.parametrize("amount", [MIN_AMOUNT, 101, INSTALLMENT_FROM, MAX_AMOUNT])
def test_amounts_in_range_are_taken(amount: int) -> None:
    assert is_amount(amount)
    assert check_amount(amount) == amount


@pytest.mark.parametrize(
    "amount", [99, 0, -100, MAX_AMOUNT + 1, True, False, 100.0, 1_000.5, "100", None]
)
def test_other_amounts_are_refused_with_one_wording(amount: Any) -> None:
    assert not is_amount(amount)
    with pytest.raises(InvalidInput) as err:
        check_amount(amount)
    assert err.value.message == AMOUNT_RULE


def test_the_refusal_names_the_field() -> None:
    with pytest.raises(InvalidInput, match=r"^refund amount must be an integer"):
        check_amount(99, "refund amount")


# ---------------------------------------------------------------- months


@pytest.mark.parametrize("months", [0, 2, 3, 12, 35, 36])
def test_lump_sum_and_2_to_36_months_are_taken(months: int) -> None:
    assert is_months(months)
    assert check_months(months) == months


@pytest.mark.parametrize("months", [1, 37, -1, 99, True, False, 3.0, "3", None])
def test_other_months_are_refused_with_one_wording(months: Any) -> None:
    assert not is_months(months)
    with pytest.raises(InvalidInput) as err:
        check_months(months)
    assert err.value.message == MONTHS_RULE
    assert MONTHS_RULE == "installment_months must be 0 (lump sum, 일시불) or 2-36"


# ---------------------------------------------------------------- installments


@pytest.mark.parametrize(
    ("amount", "card_type", "possible"),
    [
        (INSTALLMENT_FROM - 1, "credit", False),  # 49,999
        (INSTALLMENT_FROM, "credit", True),  # 50,000
        (1_000_000, "credit", True),
        (INSTALLMENT_FROM, "check", False),
        (1_000_000, None, False),  # the card's type unknown: no installments
    ],
)
def test_installments_need_a_credit_card_and_50_000_krw(
    amount: int, card_type: str | None, possible: bool
) -> None:
    assert installments_possible(amount, card_type) is possible
    if possible:
        assert check_installments(amount, 3, card_type) == 3
    else:
        with pytest.raises(InvalidInput):
            check_installments(amount, 3, card_type)


@pytest.mark.parametrize(
    ("amount", "months", "card_type", "message"),
    [
        (INSTALLMENT_FROM, 1, "credit", MONTHS_RULE),
        (INSTALLMENT_FROM, 37, "credit", MONTHS_RULE),
        (100, 1, "check", MONTHS_RULE),  # the months first
        (100, 3, "check", "check cards take no installments"),  # then the card
        (INSTALLMENT_FROM - 1, 3, "credit", "installments need an amount of at least 50000 KRW"),
    ],
)
def test_why_installments_are_refused(
    amount: int, months: int, card_type: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        check_installments(amount, months, card_type)
    assert err.value.message == message


@pytest.mark.parametrize("card_type", ["credit", "check", None])
def test_a_lump_sum_is_always_possible(card_type: str | None) -> None:
    assert check_installments(MIN_AMOUNT, 0, card_type) == 0


@pytest.mark.parametrize("months", [2, 36])
def test_installments_from_exactly_50_000_krw(months: int) -> None:
    assert check_installments(INSTALLMENT_FROM, months, "credit") == months


# ---------------------------------------------------------------- every layer asks terms


def test_the_payment_service_refuses_in_the_terms_wording() -> None:
    assert check_terms(MIN_AMOUNT, 36, " 임플란트  1차 ") == "임플란트 1차"
    with pytest.raises(InvalidInput) as err:
        check_terms(MIN_AMOUNT, 1, "x")
    assert err.value.message == MONTHS_RULE
    with pytest.raises(InvalidInput) as err:
        check_terms(MIN_AMOUNT - 1, 0, "x")
    assert err.value.message == AMOUNT_RULE


@pytest.mark.parametrize(
    ("amount", "months", "message"),
    [(MIN_AMOUNT - 1, 0, AMOUNT_RULE), (True, 0, AMOUNT_RULE), (MIN_AMOUNT, 37, MONTHS_RULE)],
)
def test_the_gateway_contract_refuses_in_the_terms_wording(
    amount: Any, months: int, message: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        ChargeRequest("cus_1", "ord_1", amount, "x", installment_months=months)
    assert err.value.message == message
    assert ChargeRequest("cus_1", "ord_1", MIN_AMOUNT, "x", installment_months=36).amount == 100


def test_the_api_schema_bounds_are_the_terms() -> None:
    fields = ChargeIn.model_json_schema()["properties"]
    assert fields["amount"]["minimum"] == MIN_AMOUNT
    assert fields["amount"]["maximum"] == terms.MAX_API_AMOUNT
    months = fields["installment_months"]
    assert (months["minimum"], months["maximum"], months["default"]) == (0, 36, 0)
    with pytest.raises(ValidationError):
        ChargeIn(card_id="card_1", amount=MIN_AMOUNT - 1, order_name="x")


def test_a_merchant_policy_stays_within_the_terms_months() -> None:
    assert MerchantPolicy(max_installment_months=36).max_installment_months == 36
    for months in (1, 37):
        with pytest.raises(ValidationError):
            MerchantPolicy(max_installment_months=months)
        with pytest.raises(ValidationError):
            InterestFree(issuer="KB국민카드", min_months=2, max_months=months)


# ---------------------------------------------------------------- the copies


def test_the_vault_minimum_charge_is_the_terms_minimum() -> None:
    """The vault keeps its own constant (it imports nothing from ivr/)."""
    assert vault.service.MIN_CHARGE_KRW == MIN_AMOUNT


def test_the_sandbox_pg_installment_threshold_is_the_terms_threshold() -> None:
    """The sandbox plays PortOne's rule (its own constant): a PG's rule that differed
    from ours would decline what the engine lets through."""
    assert cards.INSTALLMENT_FROM == INSTALLMENT_FROM
    assert cards.charge_check(cards.Scenario.approve, INSTALLMENT_FROM - 1, 2, False) is not None
    assert cards.charge_check(cards.Scenario.approve, INSTALLMENT_FROM, 2, False) is None


_RULE_NAMES = {
    "MIN_AMOUNT",
    "MAX_AMOUNT",
    "MIN_CHARGE",
    "MIN_CHARGE_KRW",
    "INSTALLMENT_FROM",
    "MIN_INSTALLMENT_MONTHS",
    "MAX_INSTALLMENT_MONTHS",
}
_OWN_COPIES = {IVR / "domain" / "terms.py", IVR / "gateways" / "sandbox" / "cards.py"}


def test_no_other_ivr_module_defines_a_charge_rule_of_its_own() -> None:
    defined: list[str] = []
    for path in sorted(IVR.rglob("*.py")):
        if path in _OWN_COPIES:
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            defined += [
                f"{path.relative_to(IVR)}: {t.id}"
                for t in targets
                if isinstance(t, ast.Name) and t.id in _RULE_NAMES
            ]
    assert defined == []


def test_a_card_of_unknown_type_takes_no_installments() -> None:
    """The PG did not say credit or check (Inicis billing): it pays at once."""
    assert not installments_possible(60_000, "unknown")
    with pytest.raises(InvalidInput, match="reported as a credit card"):
        check_installments(60_000, 3, "unknown")
    assert check_installments(60_000, 0, "unknown") == 0
