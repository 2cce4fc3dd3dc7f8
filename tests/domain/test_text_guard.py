"""The free-text guard (ivr/domain/text.py): card-like digit runs however separated, and
control, bidirectional and invisible characters, refused with one wording."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from ivr.domain.text import (
    REFUSED_ERROR,
    GuardedStr,
    check_integer,
    check_text,
    clean_text,
    has_card_number,
    mask_card_numbers,
    text_problem,
)
from ivr.errors import InvalidInput
from ivr.webhooks.events import check_payload

CARD = "must not contain a card number (13 or more digits, however separated)"
CHARS = "must not contain control, bidirectional or invisible characters"

# (text, what the guard answers: None = accepted, CARD or CHARS)
CASES: list[tuple[str, str | None]] = [
    # card numbers, however written
    ("4111111111111111", CARD),
    ("4111 1111 1111 1111", CARD),
    ("4111-1111-1111-1111", CARD),
    ("4111.1111.1111.1111", CARD),
    ("4111/1111/1111/1111", CARD),
    ("4111_1111_1111_1111", CARD),
    ("4111,1111,1111,1111", CARD),
    ("4111 - 1111 - 1111 - 1111", CARD),
    ("4111\u00a01111\u00a01111\u00a01111", CARD),  # no-break spaces
    ("4111\u30001111\u30001111\u30001111", CARD),  # ideographic spaces
    ("4111\u20131111\u20141111\u22121111", CARD),  # en dash, em dash, minus sign
    ("4111\u00b71111\u30fb1111\uff0e1111", CARD),  # middle dots, full-width full stop
    (
        "\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11",
        CARD,
    ),  # full-width
    ("\uff14\uff11\uff11\uff11\uff0d\uff11\uff11\uff11\uff11\uff0d1111-1111", CARD),  # mixed widths
    ("\u0664\u0661\u0661\u0661" * 4, CARD),  # Arabic-Indic digits
    ("주문 4111111111111111", CARD),
    ("카드4111111111111111번", CARD),
    ("card4111111111111111", CARD),  # letters on one side only: still a card number
    ("4111111111111111 1230", CARD),  # number and expiry
    ("41111111111111111230", CARD),  # 20 digits: number and expiry run together
    ("4111111111111112", CARD),  # fails Luhn: a mistyped card number is card data too
    ("1234567890123", CARD),  # 13 digits
    ("5500 0000 0000 0004", CARD),
    ("3782 822463 10005", CARD),  # Amex grouping, 15 digits
    # not card numbers
    ("123456789012", None),  # 12 digits
    ("010-1234-5678", None),  # a mobile number
    ("2026-11-28 21:54:32", None),  # a date and time
    ("헬스 정기권 11월", None),
    ("임플란트 1차 (3/12)", None),
    ("pi_01M8J2EGA6SFY81HH1C4ZKM2F6", None),  # one of our ids
    ("ABC1234567890123XYZ", None),  # a run inside a longer code
    ("order 1234 5678", None),
    ("4111 1111 1111", None),  # 12 digits
    ("1, 2, 3", None),
    ("", None),
    ("Café ☕ 🇰🇷", None),  # emoji flags are regional indicators, not format characters
    # control, bidirectional and invisible characters
    ("abc\x00def", CHARS),  # NUL
    ("abc\x07", CHARS),
    ("line\nbreak", CHARS),
    ("tab\there", CHARS),
    ("\x7f", CHARS),  # DEL
    ("c1\x85here", CHARS),  # NEL (C1)
    ("c1\x9bhere", CHARS),  # CSI (C1)
    ("invoice\u202etxt.exe", CHARS),  # RLO
    ("\u202a\u202b\u202c\u202d", CHARS),
    ("a\u2066b\u2069", CHARS),  # isolates
    ("a\u200eb", CHARS),  # LRM
    ("a\u200fb", CHARS),  # RLM
    ("a\u061cb", CHARS),  # Arabic letter mark
    ("zero\u200bwidth", CHARS),  # zero-width space
    ("\ufeffbom", CHARS),
    ("soft\u00adhyphen", CHARS),
    ("a\u2028b", CHARS),  # line separator
    ("\u3164", CHARS),  # Hangul filler: a "name" that shows nothing
    ("a\ud800b", CHARS),  # a lone surrogate (JSON "\ud800" makes one)
    ("4111\u200b1111\u200b1111\u200b1111", CHARS),  # both: the characters are named first
]


@pytest.mark.parametrize(("text", "answer"), CASES)
def test_the_guard_answers_each_case(text: str, answer: str | None) -> None:
    got = text_problem(text, "order_name")
    assert got == (None if answer is None else f"order_name {answer}")
    if answer is None:
        assert check_text(text, "order_name") == text
    else:
        with pytest.raises(InvalidInput) as caught:
            check_text(text, "order_name")
        assert caught.value.message == got
        assert text not in caught.value.message  # never echoed


def test_card_numbers_are_found_behind_invisible_characters_too() -> None:
    """Where such characters are allowed through (masking outgoing text), they still
    separate nothing."""
    assert has_card_number("4111\u200b1111\u200b1111\u200b1111")


def test_masking_keeps_the_text_and_hides_every_digit_of_the_run() -> None:
    assert mask_card_numbers("주문 4111.1111.1111.1111 건") == "주문 ••••.••••.••••.•••• 건"
    assert mask_card_numbers("１２３４５６７８９０１２３") == "•" * 13
    assert mask_card_numbers("헬스 11월") == "헬스 11월"


def test_clean_text_collapses_spaces_and_checks_the_length() -> None:
    assert clean_text("  헬스   정기권 ", "order_name") == "헬스 정기권"
    with pytest.raises(InvalidInput, match="order_name must be 1-100 characters"):
        clean_text("   ", "order_name")
    with pytest.raises(InvalidInput, match="name must be 0-5 characters"):
        clean_text("abcdef", "name", max_length=5, required=False)
    assert clean_text("", "name", required=False) == ""


def test_a_guarded_pydantic_field_refuses_with_the_same_wording() -> None:
    class Model(BaseModel):
        order_name: GuardedStr
        tags: list[GuardedStr] = []

    assert Model(order_name="헬스").order_name == "헬스"
    for bad, answer in (({"order_name": "4111.1111.1111.1111"}, CARD),
                        ({"order_name": "x", "tags": ["a\u202eb"]}, CHARS)):  # fmt: skip
        with pytest.raises(ValidationError) as caught:
            Model.model_validate(bad)
        [error] = caught.value.errors()
        assert error["type"] == REFUSED_ERROR
        assert error["msg"].endswith(answer)


def test_an_integer_as_long_as_a_card_number_is_refused_in_the_same_wording() -> None:
    assert check_integer(999_999_999_999, "webhook data") == 999_999_999_999  # 12 digits
    for value in (4111111111111111, -1_234_567_890_123):
        with pytest.raises(InvalidInput) as caught:
            check_integer(value, "webhook data")
        assert caught.value.message == f"webhook data {CARD}"
        assert str(abs(value)) not in caught.value.message
    with pytest.raises(InvalidInput) as caught:
        check_payload({"data": {"amount": 4111111111111111}})
    assert caught.value.message == f"webhook data {CARD}"


IVR = Path(__file__).resolve().parents[2] / "ivr"


def test_only_the_guard_words_a_refusal_of_card_numbers_or_hidden_characters() -> None:
    """One guard, one wording: no other ivr module spells a refusal of its own."""
    spelled = [
        f"{path.relative_to(IVR)}:{node.lineno}"
        for path in sorted(IVR.rglob("*.py"))
        if path != IVR / "domain" / "text.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and "must not contain" in node.value
    ]
    assert spelled == []
