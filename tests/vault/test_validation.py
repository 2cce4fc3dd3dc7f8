"""Card field validation: Luhn, card number length, expiry, birth date, BRN check digit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vault.bins import lookup
from vault.card import CardData, decode, encode, mask
from vault.errors import (
    InvalidBirthOrBrn,
    InvalidCardNumber,
    InvalidExpiry,
    InvalidPassword,
    InvalidRequest,
)
from vault.tokens import TOKEN_RE, check_token, new_token
from vault.validation import (
    birth_date_ok,
    brn_ok,
    check_merchant_id,
    check_text,
    luhn_ok,
    validate_birth_or_brn,
    validate_expiry,
    validate_pan,
    validate_password2,
)


@pytest.mark.parametrize(
    ("digits", "ok"),
    [
        ("4012888888881881", True),
        ("4111111111111111", True),
        ("5555555555554444", True),
        ("378282246310005", True),  # Amex, 15 digits
        ("36227206271667", True),  # Diners, 14 digits
        ("4000000000000002", True),
        ("4012888888881882", False),
        ("4111111111111112", False),
        ("0", True),
        ("79927398713", True),  # the classic example
        ("79927398710", False),
    ],
)
def test_luhn(digits: str, ok: bool) -> None:
    assert luhn_ok(digits) is ok


@pytest.mark.parametrize(
    ("pan", "ok"),
    [
        ("4012888888881881", True),
        ("378282246310005", True),
        ("36227206271667", True),
        ("4012888888881882", False),  # Luhn
        ("4222222222222", False),  # 13 digits, Luhn-valid
        ("40128888888818810", False),  # 17 digits
        ("4012 8888 8888 1881", False),  # spaces
        ("401288888888188x", False),
        ("４０１２８８８８８８８８１８８１", False),  # full-width digits are not ASCII
        ("", False),
    ],
)
def test_card_number(pan: str, ok: bool) -> None:
    if ok:
        validate_pan(pan)
    else:
        with pytest.raises(InvalidCardNumber) as err:
            validate_pan(pan)
        assert pan.strip() == "" or pan not in err.value.message


# 2026-01-15 12:00 KST; the Seoul month decides (2026-01-31 16:00 UTC is February in Seoul)
JAN = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("mmyy", "now", "ok"),
    [
        ("0126", JAN, True),  # this month is still valid
        ("1225", JAN, False),  # last month
        ("0226", JAN, True),
        ("1299", JAN, False),  # 2099: more than 20 years ahead
        ("1246", JAN, True),  # 2046: exactly 20 years
        ("1346", JAN, False),  # month 13
        ("0026", JAN, False),  # month 0
        ("126", JAN, False),
        ("01/26", JAN, False),
        ("0126", datetime(2026, 1, 31, 16, 0, tzinfo=UTC), False),  # already Feb in Seoul
        ("0126", datetime(2026, 1, 31, 14, 59, tzinfo=UTC), True),  # 23:59 KST
    ],
)
def test_expiry(mmyy: str, now: datetime, ok: bool) -> None:
    if ok:
        validate_expiry(mmyy, now)
    else:
        with pytest.raises(InvalidExpiry):
            validate_expiry(mmyy, now)


@pytest.mark.parametrize(
    ("yymmdd", "ok"),
    [
        ("900101", True),
        ("991231", True),
        ("000229", True),  # 2000 was a leap year
        ("040229", True),  # 2004
        ("010229", False),  # neither 1901 nor 2001
        ("900230", False),
        ("901301", False),
        ("900001", False),
        ("900100", False),
        ("000000", False),
        ("90010", False),
        ("9001011", False),
        ("90o101", False),
    ],
)
def test_birth_date(yymmdd: str, ok: bool) -> None:
    assert birth_date_ok(yymmdd) is ok


@pytest.mark.parametrize(
    ("brn", "ok"),
    [
        ("1248100998", True),  # 124-81-00998
        ("2208162517", True),  # 220-81-62517
        ("1208147521", True),  # 120-81-47521
        ("1248100999", False),
        ("1248100990", False),
        ("2208162518", False),
        ("0000000000", True),  # the formula gives 0 (format-valid; the PG decides)
        ("124810099", False),
        ("12481009981", False),
    ],
)
def test_business_registration_number(brn: str, ok: bool) -> None:
    assert brn_ok(brn) is ok


def _brn_check_reference(first9: str) -> int:
    """The NTS algorithm as usually published: weighted sum of d1..d8, then d9*5 split
    into tens and units."""
    w = [1, 3, 7, 1, 3, 7, 1, 3]
    d = [int(c) for c in first9]
    total = sum(a * b for a, b in zip(w, d[:8], strict=True))
    total += (d[8] * 5) // 10 + (d[8] * 5) % 10
    return (10 - total % 10) % 10


@pytest.mark.parametrize(
    "first9", ["123456789", "987654321", "555555555", "101010101", "999999999"]
)
def test_brn_agrees_with_the_published_formula(first9: str) -> None:
    good = first9 + str(_brn_check_reference(first9))
    assert brn_ok(good)
    bad = first9 + str((_brn_check_reference(first9) + 1) % 10)
    assert not brn_ok(bad)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("900101", True), ("1248100998", True), ("901301", False), ("1248100999", False),
     ("12345678", False), ("", False)],
)  # fmt: skip
def test_birth_or_brn(value: str, ok: bool) -> None:
    if ok:
        validate_birth_or_brn(value)
    else:
        with pytest.raises(InvalidBirthOrBrn):
            validate_birth_or_brn(value)


@pytest.mark.parametrize(("pw", "ok"), [("12", True), ("00", True), ("1", False),
                                        ("123", False), ("1a", False), ("", False)])  # fmt: skip
def test_password_is_two_digits(pw: str, ok: bool) -> None:
    if ok:
        validate_password2(pw)
    else:
        with pytest.raises(InvalidPassword):
            validate_password2(pw)


def test_no_password_only_when_optional() -> None:
    validate_password2("", optional=True)  # a stored card's billing key
    with pytest.raises(InvalidPassword):
        validate_password2("1", optional=True)


def test_ids_and_free_text() -> None:
    check_merchant_id("mer_01HXYZ")
    for bad in ("", "a" * 65, "mer 1", "mer|1", "상점"):
        with pytest.raises(InvalidRequest):
            check_merchant_id(bad)
    check_text("why", "registration call 42", 200)
    for bad in ("", "x" * 201, "line\nbreak", "card 4012888888881881"):
        with pytest.raises(InvalidRequest) as err:
            check_text("why", bad, 200)
        assert "4012888888881881" not in err.value.message


def test_tokens_are_random_and_well_formed() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for t in tokens:
        assert TOKEN_RE.fullmatch(t)
        assert len(t) == 28
        check_token(t)
    with pytest.raises(InvalidRequest):
        check_token("tok_4012888888881881")


def test_card_repr_and_plaintext_format() -> None:
    card = CardData("4012888888881881", "1230", "900101")
    assert "4012888888881881" not in repr(card)
    assert "900101" not in repr(card)
    assert "1230" not in str(card)
    assert repr(card) == "CardData(pan=401288******1881, expiry=****, birth=******)"
    assert mask("12") == "**"
    buf = encode(card)
    assert bytes(buf) == b"\x014012888888881881|1230|900101"
    assert decode(buf) == card


@pytest.mark.parametrize(
    ("pan", "brand", "issuer"),
    [
        ("4012888888881881", "visa", "테스트카드"),
        ("5555555555554444", "mastercard", "테스트카드"),
        ("2221000000000009", "mastercard", None),
        ("378282246310005", "amex", None),
        ("3530111333300000", "jcb", None),
        ("6200000000000005", "unionpay", None),
        ("9410000000000000", "local", None),
    ],
)
def test_bin_lookup(pan: str, brand: str, issuer: str | None) -> None:
    info = lookup(pan)
    assert (info.brand, info.issuer) == (brand, issuer)
