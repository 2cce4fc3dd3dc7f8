"""The product's charge terms (docs/product.md §4.2, §6): how much one card charge may be, and
when and over how many months it may be paid in installments (할부).

Every layer that takes a charge — the call flow, the API, the console (through the
services), bulk files, schedules, the gateway contract — asks this module, so one
amount or one choice of months gets one answer, in one wording, everywhere. Two
places cannot import it and keep a copy that a test holds equal to these values: the
vault (``vault/`` imports nothing from ``ivr/``) and the sandbox PG
(:mod:`ivr.gateways.sandbox.cards` plays PortOne's rules, which are not ours to change).

* **Amounts** are ``int`` KRW (the won has no minor unit) from :data:`MIN_AMOUNT` to
  :data:`MAX_AMOUNT`; ``bool`` and ``float`` are refused, even ``1000.0``.
* **Months**: ``0`` is a lump sum (일시불); installments run from
  :data:`MIN_INSTALLMENT_MONTHS` to :data:`MAX_INSTALLMENT_MONTHS` (one month is not an
  installment plan). A merchant's policy may lower the top
  (:attr:`ivr.merchants.policy.MerchantPolicy.max_installment_months`), never raise it.
* **Installments** need a card the PG reported as a credit card (a check card, and a
  card of unknown type, pays at once) and an amount of at least :data:`INSTALLMENT_FROM`.
"""

from __future__ import annotations

from typing import Final

from ivr.domain.states import CardType
from ivr.errors import InvalidInput

MIN_AMOUNT: Final = 100  # KRW, the smallest card charge (docs/product.md §6)
MAX_AMOUNT: Final = 100_000_000_000  # sanity bound (1,000억): read-out prompts go up to 억
# What one API request may name (1억): the API's own, lower bound; the services take
# anything up to MAX_AMOUNT (from the console, the CLI, bulk files).
MAX_API_AMOUNT: Final = 100_000_000

LUMP_SUM: Final = 0  # installment_months of a charge paid at once (일시불)
MIN_INSTALLMENT_MONTHS: Final = 2
MAX_INSTALLMENT_MONTHS: Final = 36
INSTALLMENT_FROM: Final = 50_000  # KRW: below it a charge is paid at once (docs/product.md §4.2)

MONTHS_RULE: Final = (
    f"installment_months must be {LUMP_SUM} (lump sum, 일시불) "
    f"or {MIN_INSTALLMENT_MONTHS}-{MAX_INSTALLMENT_MONTHS}"
)


def is_amount(amount: object) -> bool:
    """Whether ``amount`` is a chargeable ``int`` of KRW (bools and floats are not)."""
    return type(amount) is int and MIN_AMOUNT <= amount <= MAX_AMOUNT


def check_amount(amount: object, what: str = "amount") -> int:
    """``amount`` as a valid charge in KRW, or InvalidInput naming ``what``."""
    if type(amount) is int and is_amount(amount):  # (the type test again, for mypy)
        return amount
    raise InvalidInput(f"{what} must be an integer between {MIN_AMOUNT} and {MAX_AMOUNT} KRW")


def is_months(months: object) -> bool:
    """Whether ``months`` is a valid ``installment_months`` (0, or 2..36; an ``int``)."""
    return type(months) is int and (
        months == LUMP_SUM or MIN_INSTALLMENT_MONTHS <= months <= MAX_INSTALLMENT_MONTHS
    )


def check_months(months: object) -> int:
    """``months`` as a valid ``installment_months``, or InvalidInput (:data:`MONTHS_RULE`)."""
    if type(months) is int and is_months(months):
        return months
    raise InvalidInput(MONTHS_RULE)


def installments_possible(amount: int, card_type: str | None) -> bool:
    """Whether a charge of ``amount`` on a card of ``card_type`` may be split at all
    (the merchant's policy may still say no: :mod:`ivr.flows.payment`). A card of
    ``unknown`` type (the PG did not say, as Inicis billing does not) pays at once:
    offered installments, a check card would be declined mid-call, while a credit card
    paid at once can still be split by its holder with the card company afterwards."""
    return card_type == CardType.credit.value and amount >= INSTALLMENT_FROM


def check_installments(amount: int, months: int, card_type: str | None) -> int:
    """``months`` when a charge of ``amount`` on a ``card_type`` card may be paid over
    them, else InvalidInput saying why (the months, the card, then the amount)."""
    check_months(months)
    if months == LUMP_SUM:
        return months
    if card_type == CardType.unknown.value:
        raise InvalidInput("installments need a card the PG reported as a credit card")
    if card_type != CardType.credit.value:
        raise InvalidInput("check cards take no installments")
    if amount < INSTALLMENT_FROM:
        raise InvalidInput(f"installments need an amount of at least {INSTALLMENT_FROM} KRW")
    return months
