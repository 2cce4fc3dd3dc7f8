"""The sandbox's test-card table (docs/product.md §7) and what the "issuer" answers.

| card number          | scenario        | outcome                                            |
|----------------------|-----------------|----------------------------------------------------|
| any other Luhn-valid | approve         | success; issuer from :data:`BINS`, else 테스트카드 |
| 4000 0000 0000 0002  | hard_reject     | REJECT_CARD_PAYMENT on register and charge         |
| 4000 0000 0000 9995  | soft_decline    | registers; charges: INSUFFICIENT_BALANCE, or       |
|                      |                 | LIMIT_EXCEEDED from 100,000 KRW                    |
| 4000 0000 0000 9987  | lost_or_stolen  | LOST_OR_STOLEN_CARD                                |
| 4000 0000 0000 0069  | expired         | EXPIRED_CARD                                       |
| 4000 0000 0000 0119  | pg_error        | HTTP 500 PG_PROCESSING_ERROR (nothing recorded)    |
| 4000 0000 0000 3220  | unknown_first   | registers; the first charge of each order is       |
|                      |                 | recorded, then the connection is dropped           |
| password ``00``      | —               | INVALID_PASSWORD (registration, keyed charge)      |
| no password          | —               | PASSWORD_REQUIRED (registration) when the played   |
|                      |                 | PG requires it (``pgs.PgRules.register_password``) |
| birth ``000000``     | —               | IDENTITY_MISMATCH (registration, keyed charge)     |
| birth ``000101``     | —               | IDENTITY_MISMATCH (registration, keyed charge)     |

Checks, in order: Luhn → PG error → card status (reject, lost/stolen, expired — also a
past expiry date) → password → birth. BINs starting with 5 are check cards: no
installments. Installments also need 50,000 KRW or more (PortOne ``card_quota``).

``000000`` is docs/product.md §7's trigger, but it is not a date, so the vault (and the IVR's
card-entry validation) refuses it before any PG sees it; ``000101`` (1 January 2000) is a
valid YYMMDD that reaches the sandbox through the IVR and the vault and plays the same
identity mismatch. In the sandbox only: a real payer born on that day cannot register
here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final


class Scenario(StrEnum):
    approve = "approve"
    hard_reject = "hard_reject"
    soft_decline = "soft_decline"
    lost_or_stolen = "lost_or_stolen"
    expired = "expired"
    pg_error = "pg_error"
    unknown_first = "unknown_first"


@dataclass(frozen=True)
class TestCard:
    number: str
    scenario: Scenario
    registers: bool


TEST_CARDS: Final[tuple[TestCard, ...]] = (
    TestCard("4000000000000002", Scenario.hard_reject, registers=False),
    TestCard("4000000000009995", Scenario.soft_decline, registers=True),
    TestCard("4000000000009987", Scenario.lost_or_stolen, registers=False),
    TestCard("4000000000000069", Scenario.expired, registers=False),
    TestCard("4000000000000119", Scenario.pg_error, registers=False),
    TestCard("4000000000003220", Scenario.unknown_first, registers=True),
)
_BY_NUMBER: Final = {c.number: c.scenario for c in TEST_CARDS}
INVALID_PASSWORD: Final = "00"  # noqa: S105 - the sandbox's documented trigger value
BIRTH_MISMATCH: Final = "000000"  # docs/product.md §7; not a date, so only reachable over raw HTTP
BIRTH_MISMATCH_VALID_DATE: Final = "000101"  # a real YYMMDD: reachable through the IVR
BIRTH_MISMATCHES: Final = frozenset({BIRTH_MISMATCH, BIRTH_MISMATCH_VALID_DATE})
LIMIT_FROM: Final = 100_000  # soft_decline: from here on "limit", below "insufficient funds"
INSTALLMENT_FROM: Final = 50_000

# Sample prefixes for the sandbox only — not the real BIN registry. Names and codes are
# PortOne's card codes (카드사 코드). Prefixes starting with 5 are check cards here.
BINS: Final[tuple[tuple[str, str, str], ...]] = (
    ("9410", "BC카드", "361"),
    ("4518", "KB국민카드", "381"),
    ("4673", "신한카드", "366"),
    ("4334", "삼성카드", "365"),
    ("4040", "현대카드", "367"),
    ("4386", "롯데카드", "368"),
    ("5310", "하나카드", "374"),
    ("5365", "NH농협카드", "371"),
    ("5272", "우리카드", "041"),
)
UNKNOWN_ISSUER: Final = ("테스트카드", None)


@dataclass(frozen=True)
class Failure:
    code: str
    message: str

    @property
    def text(self) -> str:
        """``[CODE] message`` — the form of ``fail_reason``/``message`` the sandbox sends."""
        return f"[{self.code}] {self.message}"


INVALID_CARD_NUMBER: Final = Failure("INVALID_CARD_NUMBER", "유효하지 않은 카드번호입니다.")
REJECTED: Final = Failure("REJECT_CARD_PAYMENT", "카드사에서 승인을 거절했습니다.")
LOST_OR_STOLEN: Final = Failure("LOST_OR_STOLEN_CARD", "분실 또는 도난 신고된 카드입니다.")
EXPIRED: Final = Failure("EXPIRED_CARD", "유효기간이 지난 카드입니다.")
WRONG_PASSWORD: Final = Failure("INVALID_PASSWORD", "카드 비밀번호가 일치하지 않습니다.")
PASSWORD_REQUIRED: Final = Failure("PASSWORD_REQUIRED", "카드 비밀번호 앞 2자리는 필수입니다.")
IDENTITY: Final = Failure("IDENTITY_MISMATCH", "생년월일 또는 사업자등록번호가 일치하지 않습니다.")
INSUFFICIENT: Final = Failure("INSUFFICIENT_BALANCE", "잔액이 부족합니다.")
LIMIT: Final = Failure("LIMIT_EXCEEDED", "카드 한도가 초과되었습니다.")
NO_INSTALLMENT: Final = Failure("INSTALLMENT_NOT_ALLOWED", "할부가 불가능한 카드 또는 금액입니다.")
PG_ERROR: Final = Failure("PG_PROCESSING_ERROR", "PG사 처리 중 오류가 발생했습니다.")
INJECTED: Final = Failure("PG_PROCESSING_ERROR", "일시적인 오류입니다. (injected)")
NO_CUSTOMER: Final = Failure("CUSTOMER_NOT_FOUND", "등록되지 않은 customer_uid입니다.")


def luhn_ok(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def scenario(number: str) -> Scenario:
    return _BY_NUMBER.get(number, Scenario.approve)


def issuer(number: str) -> tuple[str, str | None]:
    for prefix, name, code in BINS:
        if number.startswith(prefix):
            return name, code
    return UNKNOWN_ISSUER


def is_check_card(number: str) -> bool:
    return number.startswith("5")


def mask(number: str) -> str:
    """First 6 and last 4 (PCI display rule); 7th-12th masked as PortOne does."""
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def card_status(scn: Scenario, expiry: str, today: date) -> Failure | None:
    """The issuer's view of the card itself (expiry is ``YYYY-MM``)."""
    if scn is Scenario.hard_reject:
        return REJECTED
    if scn is Scenario.lost_or_stolen:
        return LOST_OR_STOLEN
    year, month = int(expiry[:4]), int(expiry[5:7])
    if scn is Scenario.expired or (year, month) < (today.year, today.month):
        return EXPIRED
    return None


def holder_check(
    password: str | None, birth: str | None, *, password_required: bool = False
) -> Failure | None:
    """The card-holder factors (docs/product.md §2): password digits, then birth date / BRN.
    ``password_required``: the played PG wants the password to issue a billing key."""
    if not password and password_required:
        return PASSWORD_REQUIRED
    if password == INVALID_PASSWORD:
        return WRONG_PASSWORD
    if birth in BIRTH_MISMATCHES:
        return IDENTITY
    return None


def charge_check(scn: Scenario, amount: int, quota: int, check_card: bool) -> Failure | None:
    """At authorization time, after the card itself passed."""
    if quota and (check_card or amount < INSTALLMENT_FROM):
        return NO_INSTALLMENT
    if scn is Scenario.soft_decline:
        return LIMIT if amount >= LIMIT_FROM else INSUFFICIENT
    return None
