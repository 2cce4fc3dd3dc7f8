"""Korean phone numbers: one normalizer for caller IDs (Asterisk/SIP) and merchant input.

``normalize(raw)`` turns whatever a caller-ID field or a merchant API request holds into a
:class:`PhoneNumber` in national format (digits only, leading ``0``) or raises
:class:`PhoneError` with a short, user-facing message.

Accepted spellings
    ``010-1234-5678``, ``010.1234.5678``, ``010 1234 5678``, ``01012345678``,
    ``+82 10-1234-5678``, ``+82-10-1234-5678``, ``+82 (0)10 1234 5678``, ``+82 010...``,
    ``821012345678``, ``0082 10 1234 5678``, ``tel:+82-10-1234-5678``,
    ``sip:01012345678@carrier``, ``"Hong" <sip:01012345678@1.2.3.4>;tag=x``.
    Separators are whitespace, ``-``, ``.``, ``(`` and ``)``; a ``+`` may only lead.
    Full-width digits and punctuation (``０１０－１２３４…``) and Unicode dashes are read as
    their ASCII forms. For SIP URIs only the user part counts (``;params``, a password and
    the host are dropped, ``%XX`` escapes are decoded); the display name is ignored.

Country code
    ``+82``, ``0082`` and a bare leading ``82`` mean Korea; one trunk ``0`` after the
    country code is dropped (``+82 (0)2 ...``). Any other ``+CC`` / ``00CC`` is refused.
    A bare leading ``82`` is unambiguous because national numbers start with ``0`` or ``1``.

Kinds and lengths (total national digits)
    ``mobile``    ``010`` (11 only); ``011``, ``016``, ``017``, ``018``, ``019`` (10 or 11)
    ``virtual``   ``0502`` .. ``0508`` personal/virtual numbers (11 or 12)
    ``landline``  ``02`` Seoul (9 or 10); ``031``-``033``, ``041``-``044``, ``051``-``055``,
                  ``061``-``064`` (10 or 11)
    ``internet``  ``070`` (11)
    ``service``   ``15XX``, ``16XX``, ``18XX`` representative numbers (8); these cannot be
                  dialled from abroad, so :attr:`PhoneNumber.e164` is ``None`` for them.
    Only the prefix and the length are checked, never the subscriber digits.

Refusals (each a distinct message and :class:`PhoneErrorReason`)
    nothing / whitespace -> "caller ID is missing"; ``anonymous``, ``unknown``,
    ``restricted``, ``private``, ``unavailable``, ``withheld`` (also as a SIP user part)
    -> "caller ID is withheld"; letters or other characters -> "not a phone number";
    another country -> "only Korean numbers are supported"; unknown prefix; wrong length;
    a kind outside ``allow`` -> "expected a mobile number, got ...".

Messages echo the input in ``repr`` form cut to 32 characters. An input holding 13 or more
digits (no valid spelling that fails needs that many; a card number does) is not echoed.

Everything here is a pure function over constant tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import unquote

from ivr.errors import InvalidInput

__all__ = [
    "NumberKind",
    "PhoneError",
    "PhoneErrorReason",
    "PhoneNumber",
    "normalize",
    "normalize_mobile",
]


class PhoneErrorReason(StrEnum):
    """Why :func:`normalize` refused an input, for callers that branch on it."""

    missing = "missing"
    withheld = "withheld"
    malformed = "malformed"
    foreign = "foreign"
    prefix = "prefix"
    length = "length"
    kind = "kind"


class PhoneError(InvalidInput, ValueError, error_id="invalid-phone-number"):
    """A phone number was missing, withheld or invalid. ``str(err)`` is user-facing."""

    def __init__(self, message: str, reason: PhoneErrorReason) -> None:
        super().__init__(message)
        self.reason = reason


class NumberKind(StrEnum):
    mobile = "mobile"
    virtual = "virtual"
    landline = "landline"
    service = "service"
    internet = "internet"


# --- constant tables -------------------------------------------------------------------

_MAX_SHOWN: Final = 32
_MAX_SHOWN_DIGITS: Final = 12  # longest valid national number; more digits are not echoed
_MAX_INPUT: Final = 256

_WITHHELD: Final = frozenset(
    {"anonymous", "unknown", "restricted", "private", "unavailable", "withheld"}
)

_SEPARATORS: Final = frozenset(" \t\r\n\v\f\u00a0\u3000-.()")
_DIGITS: Final = frozenset("0123456789")

# Full-width forms (Korean IMEs) and typographic dashes -> ASCII.
_TO_ASCII: Final = str.maketrans(
    {
        **{chr(0xFF10 + i): str(i) for i in range(10)},
        "\uff0b": "+",
        "\uff0d": "-",
        "\uff0e": ".",
        "\uff08": "(",
        "\uff09": ")",
        "\uff1c": "<",
        "\uff1e": ">",
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
    }
)

_MOBILE_ONLY: Final = frozenset({NumberKind.mobile})
_MOBILE_10_11: Final = frozenset({10, 11})
_AREA_CODES: Final = (
    "031", "032", "033",
    "041", "042", "043", "044",
    "051", "052", "053", "054", "055",
    "061", "062", "063", "064",
)  # fmt: skip

# prefix -> (kind, allowed total lengths). The prefixes are prefix-free, so at most one
# entry matches a number; _match tries the 4-, 3- and 2-digit heads.
_RULES: Final[dict[str, tuple[NumberKind, frozenset[int]]]] = {
    "010": (NumberKind.mobile, frozenset({11})),
    **{p: (NumberKind.mobile, _MOBILE_10_11) for p in ("011", "016", "017", "018", "019")},
    "070": (NumberKind.internet, frozenset({11})),
    **{f"050{d}": (NumberKind.virtual, frozenset({11, 12})) for d in "2345678"},
    "02": (NumberKind.landline, frozenset({9, 10})),
    **{p: (NumberKind.landline, frozenset({10, 11})) for p in _AREA_CODES},
    **{p: (NumberKind.service, frozenset({8})) for p in ("15", "16", "18")},
}

# Digits before the first hyphen in the display form.
_HEAD_LEN: Final[dict[NumberKind, int]] = {
    NumberKind.mobile: 3,
    NumberKind.internet: 3,
    NumberKind.virtual: 4,
    NumberKind.service: 4,
    NumberKind.landline: 3,  # 2 for Seoul, see _head_len
}

_KIND_LABEL: Final[dict[NumberKind, str]] = {
    NumberKind.mobile: "mobile",
    NumberKind.virtual: "050X virtual",
    NumberKind.landline: "landline",
    NumberKind.service: "15XX/16XX/18XX service",
    NumberKind.internet: "070 internet",
}


# --- the value ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A valid Korean number. ``digits`` is national format, e.g. ``"01012345678"``."""

    digits: str
    kind: NumberKind

    def __post_init__(self) -> None:
        shown = _shown(self.digits)
        if not self.digits or not set(self.digits) <= _DIGITS:
            raise PhoneError(f"not a phone number: {shown}", PhoneErrorReason.malformed)
        kind = _classify(self.digits, shown)
        if kind is not self.kind:
            raise PhoneError(f"{shown} is a {kind} number, not {self.kind}", PhoneErrorReason.kind)

    @property
    def e164(self) -> str | None:
        """``+821012345678``; ``None`` for service numbers, which have no E.164 form."""
        if self.kind is NumberKind.service:
            return None
        return "+82" + self.digits[1:]

    @property
    def display(self) -> str:
        """Dialable hyphenated form: ``010-1234-5678``, ``02-123-4567``, ``1588-1234``."""
        head = _head_len(self.digits, self.kind)
        first, middle, last = self.digits[:head], self.digits[head:-4], self.digits[-4:]
        return f"{first}-{middle}-{last}" if middle else f"{first}-{last}"

    def __str__(self) -> str:
        return self.digits


# --- the normalizer ----------------------------------------------------------------------


def normalize(raw: str | None, *, allow: frozenset[NumberKind] | None = None) -> PhoneNumber:
    """Parse a caller ID or a merchant-supplied number; see the module docstring.

    ``allow`` limits the accepted kinds (``None`` accepts all five).
    Raises :class:`PhoneError` and nothing else for any string or ``None``.
    """
    if raw is None or not raw.strip():
        raise PhoneError(
            "caller ID is missing: no phone number was given", PhoneErrorReason.missing
        )
    shown = _shown(raw)
    if len(raw) > _MAX_INPUT:
        raise PhoneError(f"not a phone number: {shown} is too long", PhoneErrorReason.malformed)

    text = raw.translate(_TO_ASCII).strip()
    body = _uri_user_part(text, shown)
    if _is_withheld(body) or _is_withheld(text):
        raise PhoneError(f"caller ID is withheld ({shown})", PhoneErrorReason.withheld)

    national = _national_digits(body, shown)
    kind = _classify(national, shown)
    if allow is not None and kind not in allow:
        raise PhoneError(
            f"expected {_describe(allow)}, got a {_KIND_LABEL[kind]} number: {shown}",
            PhoneErrorReason.kind,
        )
    return PhoneNumber(national, kind)


def normalize_mobile(raw: str | None) -> PhoneNumber:
    """:func:`normalize` accepting mobile numbers only."""
    return normalize(raw, allow=_MOBILE_ONLY)


# --- helpers -----------------------------------------------------------------------------


def _shown(raw: str) -> str:
    """The input as it may appear in a message: repr, at most 32 characters, no long
    digit runs (a card number pasted into a phone field must not be echoed)."""
    if sum(c.isdigit() for c in raw) > _MAX_SHOWN_DIGITS:
        return f"<{len(raw)} characters, not shown>"
    if len(raw) > _MAX_SHOWN:
        return repr(raw[:_MAX_SHOWN]) + f"... ({len(raw)} characters)"
    return repr(raw)


def _is_withheld(token: str) -> bool:
    return token.strip().strip("\"'").strip().casefold() in _WITHHELD


def _uri_user_part(text: str, shown: str) -> str:
    """``"Name" <sip:user@host>`` / ``sip:user@host`` / ``tel:+82...`` -> the user part.
    Anything else is returned unchanged."""
    if "<" in text:
        start = text.index("<")
        end = text.find(">", start)
        if end < 0:
            raise PhoneError(f"not a phone number: {shown}", PhoneErrorReason.malformed)
        text = text[start + 1 : end].strip()
    for scheme in ("sips:", "sip:"):
        if text[: len(scheme)].lower() == scheme:
            user = text[len(scheme) :].split("@", 1)[0]
            user = user.split(";", 1)[0].split(":", 1)[0]
            return unquote(user).translate(_TO_ASCII)
    if text[:4].lower() == "tel:":
        return unquote(text[4:].split(";", 1)[0]).translate(_TO_ASCII)
    return text


def _national_digits(body: str, shown: str) -> str:
    """Strip separators and any Korean country code; return national-format digits."""
    malformed = PhoneError(
        f"not a phone number: {shown} (use digits, spaces, '-', '.', '(', ')' "
        "and an optional leading '+')",
        PhoneErrorReason.malformed,
    )
    digits: list[str] = []
    plus = False
    for ch in body:
        if ch in _DIGITS:
            digits.append(ch)
        elif ch == "+" and not digits and not plus:
            plus = True
        elif ch not in _SEPARATORS:
            raise malformed
    number = "".join(digits)
    if not number:
        raise malformed

    foreign = PhoneError(
        f"only Korean numbers are supported (+82): {shown}", PhoneErrorReason.foreign
    )
    if plus:
        if number.startswith("0"):
            raise malformed
        if not number.startswith("82"):
            raise foreign
        rest = number[2:]
    elif number.startswith("00"):
        if not number.startswith("0082"):
            raise foreign
        rest = number[4:]
    elif number.startswith("82"):
        rest = number[2:]
    else:
        return number
    # One trunk zero may follow the country code: +82 (0)10 ..., +82 010 ...
    return "0" + (rest[1:] if rest.startswith("0") else rest)


def _match(national: str) -> tuple[str, NumberKind, frozenset[int]] | None:
    for width in (4, 3, 2):
        rule = _RULES.get(national[:width])
        if rule is not None:
            return (national[:width], *rule)
    return None


def _classify(national: str, shown: str) -> NumberKind:
    match = _match(national)
    if match is None:
        raise PhoneError(
            f"unknown prefix: {shown} is not a Korean mobile (010/011/016-019), "
            "landline (02/0XX), 050X, 070 or 15XX/16XX/18XX number",
            PhoneErrorReason.prefix,
        )
    prefix, kind, lengths = match
    if len(national) not in lengths:
        expected = " or ".join(str(n) for n in sorted(lengths))
        label = national[:4] if kind is NumberKind.service else prefix
        raise PhoneError(
            f"wrong length for a {label} {kind} number: {len(national)} digits, "
            f"expected {expected}: {shown}",
            PhoneErrorReason.length,
        )
    return kind


def _head_len(digits: str, kind: NumberKind) -> int:
    if kind is NumberKind.landline and digits.startswith("02"):
        return 2
    return _HEAD_LEN[kind]


def _describe(allow: frozenset[NumberKind]) -> str:
    labels = [_KIND_LABEL[k] for k in NumberKind if k in allow]
    if not labels:
        return "no phone number at all"
    if len(labels) == 1:
        return f"a {labels[0]} number"
    return f"a {', '.join(labels[:-1])} or {labels[-1]} number"
