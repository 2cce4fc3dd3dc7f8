"""Korean readouts, as pure functions: amounts and counts in sino-Korean numerals, digit
strings digit by digit.

A :class:`Reading` holds the text (for transcripts) and the segment names that say it
(``n/…`` for numbers, ``d/…`` for digits), so any amount is played from the fixed set of
files in :data:`NUMBER_WORDS` and any digit string from :data:`DIGIT_WORDS`.

Rules (표준 읽기): groups of four digits, spaced, with 만 · 억 · 조; inside a group 십 · 백 ·
천 drop a leading 일 (10 → 십, 1,000 → 천), and so does 만 (10,000 → 만, 11,000 → 만 천,
100,010,000 → 일억 만) but 억 and 조 keep it (일억, 일조). 0 → 영. Digits: 0 → 공.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_SINO: Final = ("영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구")
# (value, Korean, segment name) inside a four-digit group, largest first
_PLACES: Final = ((1000, "천", "n/cheon"), (100, "백", "n/baek"), (10, "십", "n/sip"))
# four-digit group units, largest first
_GROUPS: Final = ((10**12, "조", "n/jo"), (10**8, "억", "n/eok"), (10**4, "만", "n/man"))

MAX_NUMBER: Final = 10**16 - 1
"""The largest number :func:`read_number` reads (9,999조 …)."""

NUMBER_WORDS: Final[dict[str, str]] = {
    **{f"n/{d}": word for d, word in enumerate(_SINO)},
    **{name: word for _, word, name in _PLACES + _GROUPS},
}
"""Segment name → Korean word: every file a number reading can use."""

DIGIT_WORDS: Final[dict[str, str]] = {
    f"d/{d}": ("공" if d == 0 else word) for d, word in enumerate(_SINO)
}
"""Segment name → Korean word for digit-by-digit readings (0 is 공)."""

_DIGITS_RE: Final = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class Reading:
    """What a value sounds like: ``text`` for transcripts, ``segments`` to play in order."""

    text: str
    segments: tuple[str, ...]


def _group(value: int, *, drop_leading_one: bool) -> tuple[str, list[str]]:
    """Read 1..9999; ``drop_leading_one`` turns a bare 1 into nothing (for 만)."""
    if value == 1 and drop_leading_one:
        return "", []
    text, segments = "", []
    for place, word, name in _PLACES:
        digit = value // place % 10
        if digit:
            if digit > 1:
                text += _SINO[digit]
                segments.append(f"n/{digit}")
            text += word
            segments.append(name)
    ones = value % 10
    if ones:
        text += _SINO[ones]
        segments.append(f"n/{ones}")
    return text, segments


def read_number(value: int) -> Reading:
    """Read ``value`` (0 ≤ value ≤ :data:`MAX_NUMBER`) in sino-Korean numerals."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("a number reading needs an int")
    if not 0 <= value <= MAX_NUMBER:
        raise ValueError(f"numbers are read from 0 to {MAX_NUMBER}")
    if value == 0:
        return Reading(_SINO[0], ("n/0",))
    words: list[str] = []
    segments: list[str] = []
    rest = value
    for size, unit, unit_name in _GROUPS:
        group, rest = divmod(rest, size)
        if group:
            text, segs = _group(group, drop_leading_one=unit == "만")
            words.append(text + unit)
            segments += [*segs, unit_name]
    if rest:
        text, segs = _group(rest, drop_leading_one=False)
        words.append(text)
        segments += segs
    return Reading(" ".join(words), tuple(segments))


def read_digits(digits: str) -> Reading:
    """Read a string of ASCII digits one by one, 0 as 공 (card last 4, approval numbers)."""
    if not isinstance(digits, str) or not _DIGITS_RE.fullmatch(digits):
        raise ValueError("a digit reading needs a non-empty string of 0-9")
    names = tuple(f"d/{c}" for c in digits)
    return Reading(" ".join(DIGIT_WORDS[n] for n in names), names)
