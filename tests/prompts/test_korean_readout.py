"""Korean readouts: sino-Korean numbers (amounts, months) and digit-by-digit strings."""

from __future__ import annotations

import pytest

from ivr.prompts.korean import (
    DIGIT_WORDS,
    MAX_NUMBER,
    NUMBER_WORDS,
    read_digits,
    read_number,
)

# value, text, segments (without the "n/" prefix, for readability)
NUMBERS: list[tuple[int, str, str]] = [
    (0, "영", "0"),
    (1, "일", "1"),
    (2, "이", "2"),
    (10, "십", "sip"),
    (11, "십일", "sip 1"),
    (15, "십오", "sip 5"),
    (20, "이십", "2 sip"),
    (21, "이십일", "2 sip 1"),
    (99, "구십구", "9 sip 9"),
    (100, "백", "baek"),
    (101, "백일", "baek 1"),
    (110, "백십", "baek sip"),
    (999, "구백구십구", "9 baek 9 sip 9"),
    (1000, "천", "cheon"),
    (1001, "천일", "cheon 1"),
    (1100, "천백", "cheon baek"),
    (2000, "이천", "2 cheon"),
    (10000, "만", "man"),
    (10001, "만 일", "man 1"),
    (10100, "만 백", "man baek"),
    (11000, "만 천", "man cheon"),
    (21000, "이만 천", "2 man cheon"),
    (50000, "오만", "5 man"),
    (53000, "오만 삼천", "5 man 3 cheon"),
    (60000, "육만", "6 man"),
    (99999, "구만 구천구백구십구", "9 man 9 cheon 9 baek 9 sip 9"),
    (100000, "십만", "sip man"),
    (101000, "십만 천", "sip man cheon"),
    (110000, "십일만", "sip 1 man"),
    (1000000, "백만", "baek man"),
    (1010000, "백일만", "baek 1 man"),
    (10000000, "천만", "cheon man"),
    (12345678, "천이백삼십사만 오천육백칠십팔", "cheon 2 baek 3 sip 4 man 5 cheon 6 baek 7 sip 8"),
    (100000000, "일억", "1 eok"),
    (100000001, "일억 일", "1 eok 1"),
    (100010000, "일억 만", "1 eok man"),
    (110000000, "일억 천만", "1 eok cheon man"),
    (200000000, "이억", "2 eok"),
    (1000000000, "십억", "sip eok"),
    (
        1234567890,
        "십이억 삼천사백오십육만 칠천팔백구십",
        "sip 2 eok 3 cheon 4 baek 5 sip 6 man 7 cheon 8 baek 9 sip",
    ),
    (10000000000, "백억", "baek eok"),
    (1000000000000, "일조", "1 jo"),
    (1000100010001, "일조 일억 만 일", "1 jo 1 eok man 1"),
    (
        MAX_NUMBER,
        "구천구백구십구조 구천구백구십구억 구천구백구십구만 구천구백구십구",
        "9 cheon 9 baek 9 sip 9 jo 9 cheon 9 baek 9 sip 9 eok "
        "9 cheon 9 baek 9 sip 9 man 9 cheon 9 baek 9 sip 9",
    ),
]  # fmt: skip


def test_the_table_has_at_least_thirty_cases() -> None:
    assert len(NUMBERS) >= 30


@pytest.mark.parametrize(("value", "text", "segments"), NUMBERS, ids=[str(n[0]) for n in NUMBERS])
def test_number_reading(value: int, text: str, segments: str) -> None:
    reading = read_number(value)
    assert reading.text == text
    assert reading.segments == tuple(f"n/{s}" for s in segments.split())


@pytest.mark.parametrize(("value", "text", "segments"), NUMBERS, ids=[str(n[0]) for n in NUMBERS])
def test_segment_words_spell_the_text(value: int, text: str, segments: str) -> None:
    """Playing the segments says exactly the text (spaces aside)."""
    reading = read_number(value)
    assert "".join(NUMBER_WORDS[s] for s in reading.segments) == text.replace(" ", "")


def test_months_read_as_sino_korean() -> None:
    assert [read_number(m).text for m in (2, 3, 6, 10, 12, 24, 36)] == [
        "이", "삼", "육", "십", "십이", "이십사", "삼십육",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("digits", "text", "segments"),
    [
        ("0", "공", ("d/0",)),
        ("1234", "일 이 삼 사", ("d/1", "d/2", "d/3", "d/4")),
        ("0010", "공 공 일 공", ("d/0", "d/0", "d/1", "d/0")),
        ("30012345", "삼 공 공 일 이 삼 사 오", tuple(f"d/{c}" for c in "30012345")),
        ("6789", "육 칠 팔 구", ("d/6", "d/7", "d/8", "d/9")),
    ],
)
def test_digit_reading(digits: str, text: str, segments: tuple[str, ...]) -> None:
    reading = read_digits(digits)
    assert (reading.text, reading.segments) == (text, segments)


def test_the_fixed_segment_sets() -> None:
    assert set(NUMBER_WORDS) == {
        *(f"n/{d}" for d in range(10)), "n/sip", "n/baek", "n/cheon", "n/man", "n/eok", "n/jo",
    }  # fmt: skip
    assert set(DIGIT_WORDS) == {f"d/{d}" for d in range(10)}
    assert DIGIT_WORDS["d/0"] == "공"
    assert NUMBER_WORDS["n/0"] == "영"


@pytest.mark.parametrize("value", [-1, MAX_NUMBER + 1])
def test_numbers_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="from 0 to"):
        read_number(value)


@pytest.mark.parametrize("value", [True, 1.0, "1"])
def test_numbers_must_be_ints(value: object) -> None:
    with pytest.raises(TypeError):
        read_number(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", "12a4", "12 34", "１２", "1\n", "²"])
def test_digits_must_be_ascii_digits(value: str) -> None:
    with pytest.raises(ValueError, match="0-9"):
        read_digits(value)
