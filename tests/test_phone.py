"""ivr.phone: one normalizer for caller IDs and merchant-supplied Korean numbers."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.phone import (
    NumberKind,
    PhoneError,
    PhoneErrorReason,
    PhoneNumber,
    normalize,
    normalize_mobile,
)

M = NumberKind.mobile
V = NumberKind.virtual
L = NumberKind.landline
S = NumberKind.service
I = NumberKind.internet  # noqa: E741


@pytest.mark.parametrize(
    ("raw", "digits", "kind"),
    [
        # mobile, every documented spelling
        ("+82 10-1234-5678", "01012345678", M),
        ("+82-10-1234-5678", "01012345678", M),
        ("+82 (0)10 1234 5678", "01012345678", M),
        ("+82 010-1234-5678", "01012345678", M),
        ("821012345678", "01012345678", M),
        ("0082 10 1234 5678", "01012345678", M),
        ("010-1234-5678", "01012345678", M),
        ("010.1234.5678", "01012345678", M),
        ("010 1234 5678", "01012345678", M),
        ("01012345678", "01012345678", M),
        ("  (010) 1234-5678\t", "01012345678", M),
        ("０１０－１２３４－５６７８", "01012345678", M),
        ("011-123-4567", "0111234567", M),
        ("016-1234-5678", "01612345678", M),
        ("019 123 4567", "0191234567", M),
        # SIP / tel caller IDs
        ("sip:01012345678@carrier", "01012345678", M),
        ('"Hong" <sip:01012345678@1.2.3.4>', "01012345678", M),
        ('"Hong" <sip:01012345678@1.2.3.4>;tag=as12', "01012345678", M),
        ("<sips:+821012345678;user=phone@gw.example>", "01012345678", M),
        ("sip:%2B821012345678@gw", "01012345678", M),
        ("tel:+82-10-1234-5678", "01012345678", M),
        ("TEL:+82-2-123-4567;phone-context=x", "021234567", L),
        # other kinds
        ("0505-000-0000", "05050000000", V),
        ("0505-1234-5678", "050512345678", V),
        ("0502 123 4567", "05021234567", V),
        ("02-123-4567", "021234567", L),
        ("02-1234-5678", "0212345678", L),
        ("+82 (0)2 1234 5678", "0212345678", L),
        ("031-123-4567", "0311234567", L),
        ("064-1234-5678", "06412345678", L),
        ("070-1234-5678", "07012345678", I),
        ("+82 70 1234 5678", "07012345678", I),
        ("1588-1234", "15881234", S),
        ("1600 1234", "16001234", S),
        ("1899.0000", "18990000", S),
    ],
)
def test_valid_forms(raw: str, digits: str, kind: NumberKind) -> None:
    number = normalize(raw)
    assert number.digits == digits
    assert number.kind is kind
    assert str(number) == digits


@pytest.mark.parametrize(
    ("raw", "reason", "message"),
    [
        (None, PhoneErrorReason.missing, "caller ID is missing"),
        ("", PhoneErrorReason.missing, "caller ID is missing"),
        ("   \t", PhoneErrorReason.missing, "caller ID is missing"),
        ("anonymous", PhoneErrorReason.withheld, "caller ID is withheld"),
        ("Anonymous", PhoneErrorReason.withheld, "caller ID is withheld"),
        ("unknown", PhoneErrorReason.withheld, "caller ID is withheld"),
        ("RESTRICTED", PhoneErrorReason.withheld, "caller ID is withheld"),
        ("private", PhoneErrorReason.withheld, "caller ID is withheld"),
        ("unavailable", PhoneErrorReason.withheld, "caller ID is withheld"),
        ("withheld", PhoneErrorReason.withheld, "caller ID is withheld"),
        (
            '"Anonymous" <sip:anonymous@anonymous.invalid>',
            PhoneErrorReason.withheld,
            "caller ID is withheld",
        ),
        ("hello", PhoneErrorReason.malformed, "not a phone number"),
        ("010-1234-567O", PhoneErrorReason.malformed, "not a phone number"),
        ("010-1234-5678 ext 12", PhoneErrorReason.malformed, "not a phone number"),
        ("010+1234+5678", PhoneErrorReason.malformed, "not a phone number"),
        ("*23#", PhoneErrorReason.malformed, "not a phone number"),
        ("---", PhoneErrorReason.malformed, "not a phone number"),
        ("<sip:01012345678@host", PhoneErrorReason.malformed, "not a phone number"),
        ("+1 415 555 0100", PhoneErrorReason.foreign, "only Korean numbers are supported"),
        ("+81 90-1234-5678", PhoneErrorReason.foreign, "only Korean numbers are supported"),
        ("001 415 555 0100", PhoneErrorReason.foreign, "only Korean numbers are supported"),
        ("010-123-456", PhoneErrorReason.length, "wrong length for a 010 mobile number"),
        ("010-123-4567", PhoneErrorReason.length, "expected 11"),
        ("011-1234-56789", PhoneErrorReason.length, "expected 10 or 11"),
        ("02-12-3456", PhoneErrorReason.length, "expected 9 or 10"),
        ("0505-12-3456", PhoneErrorReason.length, "expected 11 or 12"),
        ("070-123-4567", PhoneErrorReason.length, "070 internet"),
        ("1588-12345", PhoneErrorReason.length, "1588 service"),
        ("012-1234-5678", PhoneErrorReason.prefix, "unknown prefix"),
        ("0501-123-4567", PhoneErrorReason.prefix, "unknown prefix"),
        ("1234-5678", PhoneErrorReason.prefix, "unknown prefix"),
        ("4111111111111111", PhoneErrorReason.prefix, "unknown prefix"),
    ],
)
def test_invalid_forms(raw: str | None, reason: PhoneErrorReason, message: str) -> None:
    with pytest.raises(PhoneError, match=message) as info:
        normalize(raw)
    assert info.value.reason is reason
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("raw", "display", "e164"),
    [
        ("01012345678", "010-1234-5678", "+821012345678"),
        ("0111234567", "011-123-4567", "+82111234567"),
        ("021234567", "02-123-4567", "+8221234567"),
        ("0212345678", "02-1234-5678", "+82212345678"),
        ("0311234567", "031-123-4567", "+82311234567"),
        ("05050000000", "0505-000-0000", "+825050000000"),
        ("050512345678", "0505-1234-5678", "+8250512345678"),
        ("07012345678", "070-1234-5678", "+827012345678"),
        ("15881234", "1588-1234", None),
    ],
)
def test_display_and_e164(raw: str, display: str, e164: str | None) -> None:
    number = normalize(raw)
    assert number.display == display
    assert number.e164 == e164


def test_allow_restricts_kinds() -> None:
    assert normalize_mobile("+82 10 1234 5678").kind is M
    with pytest.raises(PhoneError, match="expected a mobile number, got a landline") as info:
        normalize_mobile("02-123-4567")
    assert info.value.reason is PhoneErrorReason.kind
    with pytest.raises(PhoneError, match="expected a mobile or 070 internet number"):
        normalize("1588-1234", allow=frozenset({M, I}))
    assert normalize("070-1234-5678", allow=frozenset({M, I})).kind is I


def test_messages_truncate_long_input_and_hide_card_like_digits() -> None:
    raw = "x" * 100
    with pytest.raises(PhoneError) as info:
        normalize(raw)
    assert raw not in str(info.value)
    assert "x" * 33 not in str(info.value)
    pan = "4111 1111 1111 1111"
    with pytest.raises(PhoneError) as info:
        normalize(pan)
    assert "1111" not in str(info.value)


def test_phone_number_value_checks_itself() -> None:
    number = PhoneNumber("01012345678", M)
    assert number == normalize("010-1234-5678")
    with pytest.raises(dataclasses.FrozenInstanceError):
        number.digits = "01099998888"  # type: ignore[misc]
    with pytest.raises(PhoneError):
        PhoneNumber("01012345678", L)
    with pytest.raises(PhoneError):
        PhoneNumber("010-1234-5678", M)


_DIGIT = "0123456789"

mobiles = st.one_of(
    st.text(_DIGIT, min_size=8, max_size=8).map(lambda rest: "010" + rest),
    st.builds(
        lambda prefix, rest: prefix + rest,
        st.sampled_from(["011", "016", "017", "018", "019"]),
        st.text(_DIGIT, min_size=7, max_size=8),
    ),
)

any_valid = st.one_of(
    mobiles,
    st.builds(
        lambda p, r: p + r,
        st.sampled_from([f"050{d}" for d in "2345678"]),
        st.text(_DIGIT, min_size=7, max_size=8),
    ),
    st.text(_DIGIT, min_size=7, max_size=8).map(lambda r: "02" + r),
    st.builds(
        lambda p, r: p + r,
        st.sampled_from(["031", "042", "051", "064"]),
        st.text(_DIGIT, min_size=7, max_size=8),
    ),
    st.text(_DIGIT, min_size=8, max_size=8).map(lambda r: "070" + r),
    st.builds(
        lambda p, r: p + r,
        st.sampled_from(["15", "16", "18"]),
        st.text(_DIGIT, min_size=6, max_size=6),
    ),
)


@given(mobiles)
def test_mobile_display_and_e164_round_trip(digits: str) -> None:
    number = normalize_mobile(digits)
    assert number.digits == digits
    assert normalize(number.display) == number
    assert number.e164 is not None
    assert normalize(number.e164) == number
    assert normalize(f'"Caller" <sip:{number.e164}@10.0.0.1>') == number


@given(any_valid)
def test_every_kind_round_trips_through_display(digits: str) -> None:
    number = normalize(digits)
    assert number.digits == digits
    assert normalize(number.display) == number
    assert normalize(str(number)) == number
    if number.e164 is not None:
        assert normalize(number.e164) == number


@given(st.text())
def test_arbitrary_text_only_raises_phone_error(raw: str) -> None:
    try:
        number = normalize(raw)
    except PhoneError:
        return
    assert normalize(number.display) == number


@given(st.text(alphabet='0123456789+-.() <>@:;"%sipteluxSIPTEL０１－', max_size=48))
def test_phone_like_text_only_raises_phone_error(raw: str) -> None:
    try:
        number = normalize(raw)
    except PhoneError:
        return
    assert normalize(number.display) == number
