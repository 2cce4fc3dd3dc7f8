"""The one guard for free text: names, product and order names, references, reasons,
URLs — anything a merchant, an operator or a file types that the engine stores, shows,
texts or sends on.

Two rules, one wording each (:func:`check_text`):

* **No card numbers.** A run of 13 or more digits, however it is split up, is refused:
  before looking, every decimal digit of any script (full-width ``４``, Arabic-Indic
  ``٤``, …) is read as its ASCII digit, and spaces of every kind, dots, dashes, slashes,
  underscores, commas, apostrophes and invisible format characters count as
  separators (up to three between two digits), so ``4111.1111.1111.1111``,
  ``4111 - 1111 - 1111 - 1111`` and ``４１１１…`` are caught like ``4111111111111111``.
  Luhn is *not* required: a mistyped card number is still card data, a run of 13+
  digits in an order name is almost never anything else, and a Luhn check would let
  nine in ten typos through. Runs longer than 19 are refused too (a number followed
  by its expiry). A run written inside a longer code — an ASCII letter or digit right
  before *and* after it, as in an id's ULID — is not a card number.
* **No control or invisible characters.** C0 and C1 controls (NUL, tab, line breaks
  included), bidirectional controls (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069),
  every other format character (category Cf: zero-width spaces and joiners, the BOM,
  soft hyphen, tags…), line and paragraph separators, lone surrogates and the Hangul
  fillers that render as nothing. They can hide or reorder what a person reads in the
  console, an SMS or a PG receipt, and NUL truncates text in C libraries.

:func:`clean_text` also makes every run of spaces one space and checks the length;
:func:`check_integer` refuses an integer as long as a card number (webhook payloads);
:func:`mask_card_numbers` masks runs in text that must go out anyway (webhook events).
The API schemas, the bulk rows, the console forms (through the services) and the CLI
all use these functions, so one input gets one answer everywhere.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo
from pydantic_core import PydanticCustomError

from ivr.errors import InvalidInput

MIN_CARD_DIGITS = 13

# Separators read as one canonical space when looking for digit runs (one character for
# one character, so spans found in the folded text are spans of the original).
_SEPARATOR_CHARS = frozenset(
    "\t\n\v\f\r\x1c\x1d\x1e\x1f\x85"  # ASCII/C1 whitespace (refused anyway; folded for masking)
    ".\u00b7\u0387\u2022\u2024\u2027\u2219\u22c5\u30fb\uff0e\uff65\u3002\uff61"  # dots
    "/\\\u2044\u2215\u29f8\uff0f\uff3c"  # slashes
    ",\uff0c\u3001\u060c"  # commas
    "'\u2019\uff07"  # apostrophes (1'234'567)
    "\u2212\u2043\ufe63"  # minus signs and hyphen bullet (the other dashes are category Pd)
)
_SEPARATOR_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Pd", "Pc", "Cf"})

_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")  # Hangul fillers: letters that show nothing
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

_CARD_RUN = re.compile(r"[0-9](?: {0,3}[0-9]){" + str(MIN_CARD_DIGITS - 1) + ",}")
_CODE_CHAR = re.compile(r"[0-9A-Za-z]")


class _Fold(dict[int, str]):
    """``str.translate`` table, filled on first sight of each character: decimal digits
    of any script → ASCII digit, separators → space, anything else → itself."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        decimal = unicodedata.decimal(ch, None)
        if decimal is not None:
            out = str(decimal)
        elif ch in _SEPARATOR_CHARS or unicodedata.category(ch) in _SEPARATOR_CATEGORIES:
            out = " "
        else:
            out = ch
        self[code] = out
        return out


_FOLD = _Fold({ord(" "): " ", **{ord(d): d for d in "0123456789"}})


def _folded(text: str) -> str:
    return text.translate(_FOLD)


def card_number_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` holds card-like digit runs, as ``(start, end)`` of the original."""
    folded = _folded(text)
    spans: list[tuple[int, int]] = []
    for m in _CARD_RUN.finditer(folded):
        start, end = m.span()
        before = folded[start - 1] if start else ""
        after = folded[end] if end < len(folded) else ""
        if not (_CODE_CHAR.match(before) and _CODE_CHAR.match(after)):  # not inside a code
            spans.append((start, end))
    return spans


def has_card_number(text: str) -> bool:
    return bool(card_number_spans(text))


def mask_card_numbers(text: str, mask: str = "•") -> str:
    """``text`` with the digits of every card-like run replaced by ``mask``."""
    spans = card_number_spans(text)
    if not spans:
        return text
    chars = list(text)
    folded = _folded(text)
    for start, end in spans:
        for i in range(start, end):
            if folded[i].isdigit():
                chars[i] = mask
    return "".join(chars)


def is_refused_character(ch: str) -> bool:
    """A control, bidirectional, format or otherwise invisible character."""
    return ch in _BIDI or ch in _BLANK_LETTERS or unicodedata.category(ch) in _REFUSED_CATEGORIES


def remove_refused_characters(text: str) -> str:
    """``text`` without the characters :func:`is_refused_character` refuses."""
    if not has_refused_character(text):
        return text
    return "".join(c for c in text if not is_refused_character(c))


def has_refused_character(text: str) -> bool:
    if text.isascii():  # the common case: only C0 and DEL can be wrong
        return any(c < " " or c == "\x7f" for c in text)
    return any(is_refused_character(c) for c in text)


def card_number_message(field: str) -> str:
    return f"{field} must not contain a card number (13 or more digits, however separated)"


def character_message(field: str) -> str:
    return f"{field} must not contain control, bidirectional or invisible characters"


def text_problem(text: str, field: str) -> str | None:
    """The refusal message for ``text`` (never quoting it), or ``None`` if it is fine."""
    if has_refused_character(text):
        return character_message(field)
    if has_card_number(text):
        return card_number_message(field)
    return None


def check_text(text: str, field: str) -> str:
    """``text`` unchanged, or :class:`InvalidInput` naming ``field`` (never the value)."""
    problem = text_problem(text, field)
    if problem is not None:
        raise InvalidInput(problem)
    return text


def check_integer(value: int, field: str) -> int:
    """``value`` unchanged, or :class:`InvalidInput` when it has as many digits as a card
    number (an integer in data that goes out, such as a webhook payload)."""
    if len(str(abs(value))) >= MIN_CARD_DIGITS:
        raise InvalidInput(card_number_message(field))
    return value


def clean_text(text: str, field: str, *, max_length: int = 100, required: bool = True) -> str:
    """``text`` checked (:func:`check_text`), with runs of spaces made one space and the
    ends trimmed, 1 (or 0 when not ``required``) to ``max_length`` characters."""
    check_text(text, field)
    out = " ".join(text.split())
    if (required and not out) or len(out) > max_length:
        low = 1 if required else 0
        raise InvalidInput(f"{field} must be {low}-{max_length} characters")
    return out


# ---------------------------------------------------------------- pydantic models

REFUSED_ERROR = "text_refused"  # the pydantic error type of a refusal (API problem details)


def _pydantic_guard(value: str, info: ValidationInfo) -> str:
    problem = text_problem(value, info.field_name or "text")
    if problem is not None:
        raise PydanticCustomError(REFUSED_ERROR, problem)
    return value


GuardedStr = Annotated[str, AfterValidator(_pydantic_guard)]
"""A ``str`` field of a pydantic model that refuses what :func:`check_text` refuses,
naming the field (the error type is :data:`REFUSED_ERROR`)."""
