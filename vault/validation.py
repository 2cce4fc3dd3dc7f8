"""Validation of card fields and of the ids and reasons that come with a request.

Card rules (docs/product.md §4.1): card number 14-16 digits with a valid Luhn check digit;
expiry MMYY not in the past (a card is valid through the last day of its month, judged
in Korean time); birth date YYMMDD that is a real date in 19xx or 20xx, or a 10-digit
business registration number (사업자등록번호) with a valid check digit; card password
exactly 2 digits (checked, never kept).

Error messages name the rule that failed, never the value.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Final

from vault.card import CardData
from vault.clock import SEOUL
from vault.errors import (
    InvalidBirthOrBrn,
    InvalidCardNumber,
    InvalidExpiry,
    InvalidPassword,
    InvalidRequest,
)

MAX_EXPIRY_YEARS: Final = 20
BRN_WEIGHTS: Final = (1, 3, 7, 1, 3, 7, 1, 3, 5)

_MERCHANT_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_LONG_DIGITS: Final = re.compile(r"\d{13,}")


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check over a string of ASCII digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def validate_pan(pan: str) -> None:
    if not _digits(pan) or not 14 <= len(pan) <= 16:
        raise InvalidCardNumber("card number must be 14 to 16 digits")
    if not luhn_ok(pan):
        raise InvalidCardNumber("card number fails the Luhn check")


def validate_expiry(mmyy: str, now: datetime) -> None:
    """MMYY, not before the current month in Seoul, at most 20 years ahead."""
    if not _digits(mmyy) or len(mmyy) != 4:
        raise InvalidExpiry("expiry must be 4 digits MMYY")
    month, year = int(mmyy[:2]), 2000 + int(mmyy[2:])
    if not 1 <= month <= 12:
        raise InvalidExpiry("expiry month must be 01 to 12")
    today = now.astimezone(SEOUL)
    if (year, month) < (today.year, today.month):
        raise InvalidExpiry("card has expired")
    if year > today.year + MAX_EXPIRY_YEARS:
        raise InvalidExpiry("expiry is too far in the future")


def birth_date_ok(yymmdd: str) -> bool:
    """A real calendar date in 19YY or 20YY (29 Feb of '00 is valid: 2000 was leap)."""
    if not _digits(yymmdd) or len(yymmdd) != 6:
        return False
    yy, mm, dd = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    for century in (1900, 2000):
        try:
            date(century + yy, mm, dd)
        except ValueError:
            continue
        return True
    return False


def brn_ok(brn: str) -> bool:
    """The National Tax Service check digit of a business registration number.

    Weights 1,3,7,1,3,7,1,3,5 on the first nine digits; add ``(d9 * 5) // 10``
    (the carry of the last weighted product); the check digit is
    ``(10 - sum % 10) % 10``.
    """
    if not _digits(brn) or len(brn) != 10:
        return False
    d = [ord(c) - 48 for c in brn]
    total = sum(w * x for w, x in zip(BRN_WEIGHTS, d, strict=False))
    total += (d[8] * 5) // 10
    return (10 - total % 10) % 10 == d[9]


def validate_birth_or_brn(value: str) -> None:
    if len(value) == 6:
        if not birth_date_ok(value):
            raise InvalidBirthOrBrn("birth date must be a valid YYMMDD date")
    elif len(value) == 10:
        if not brn_ok(value):
            raise InvalidBirthOrBrn("business registration number fails its check digit")
    else:
        raise InvalidBirthOrBrn("birth date must be 6 digits or a 10-digit business number")


def validate_password2(password2: str, *, optional: bool = False) -> None:
    """``optional``: ``""`` (no password) is accepted — a billing key for a stored card
    moving to another PG account; the gateway leaves the field out."""
    if optional and password2 == "":
        return
    if not (_digits(password2) and len(password2) == 2):
        raise InvalidPassword("card password must be its first 2 digits")


def validate_card(card: CardData, now: datetime) -> None:
    validate_pan(card.pan)
    validate_expiry(card.expiry, now)
    validate_birth_or_brn(card.birth)


def check_merchant_id(merchant_id: str) -> None:
    if not _MERCHANT_RE.fullmatch(merchant_id):
        raise InvalidRequest("merchant_id must be 1-64 characters of [A-Za-z0-9_.:-]")


def check_text(field: str, value: str, max_len: int) -> None:
    """``who`` / ``why``: printable, 1..max_len, and no card-number-like digit runs."""
    if not value or len(value) > max_len or not value.isprintable():
        raise InvalidRequest(f"{field} must be 1-{max_len} printable characters")
    if _LONG_DIGITS.search(value):
        raise InvalidRequest(f"{field} must not contain long digit sequences")
