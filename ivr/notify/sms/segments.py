"""Encode an SMS body into SMPP ``short_message`` parts.

GSM 03.38 7-bit (one unpacked septet per byte, ``data_coding`` 0x00) when every
character is in the default alphabet or its extension table; otherwise UCS-2 as
UTF-16BE (``data_coding`` 0x08) — every Korean text. A single message holds 160
septets or 70 UTF-16 units; longer bodies are split into parts of 153 septets or 67
units, each led by a concatenation UDH (``05 00 03 ref total seq``, 8-bit reference)
and sent with ``esm_class`` 0x40 (UDHI). A surrogate pair (emoji) or a GSM escape
pair is never split across parts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.notify.sms.errors import SmsTooLong

GSM7 = 0x00
UCS2 = 0x08
UDHI = 0x40

_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>"
    "?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_BASIC = {ch: i for i, ch in enumerate(_BASIC) if ch != "\x1b"}
_GSM_EXT = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F,
            "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65}  # fmt: skip

GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units
MAX_PARTS = 255


@dataclass(frozen=True, slots=True)
class Encoded:
    data_coding: int
    esm_class: int
    parts: list[bytes]


def _gsm_units(body: str) -> list[bytes] | None:
    """One entry per character (1 or 2 septets), or None if not GSM-7."""
    units: list[bytes] = []
    for ch in body:
        if ch in _GSM_BASIC:
            units.append(bytes([_GSM_BASIC[ch]]))
        elif ch in _GSM_EXT:
            units.append(bytes([0x1B, _GSM_EXT[ch]]))
        else:
            return None
    return units


def _ucs2_units(body: str) -> list[bytes]:
    """One entry per character: 2 bytes, or 4 for a surrogate pair."""
    return [ch.encode("utf-16-be") for ch in body]


def _chunk(units: list[bytes], limit: int, unit_size: int) -> list[bytes]:
    """Greedy split of whole characters into chunks of at most ``limit`` units."""
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for u in units:
        n = len(u) // unit_size
        if size + n > limit:
            chunks.append(b"".join(current))
            current, size = [], 0
        current.append(u)
        size += n
    if current or not chunks:
        chunks.append(b"".join(current))
    return chunks


def encode(body: str, *, concat_ref: int = 0) -> Encoded:
    """Encode ``body``; ``concat_ref`` (0-255) ties the parts of one message together."""
    gsm = _gsm_units(body)
    if gsm is not None:
        coding, units, unit_size, single, part = GSM7, gsm, 1, GSM_SINGLE, GSM_PART
    else:
        coding, units, unit_size, single, part = UCS2, _ucs2_units(body), 2, UCS2_SINGLE, UCS2_PART
    total = sum(len(u) for u in units) // unit_size
    if total <= single:
        return Encoded(coding, 0, [b"".join(units)])
    chunks = _chunk(units, part, unit_size)
    if len(chunks) > MAX_PARTS:
        raise SmsTooLong(f"SMS needs {len(chunks)} parts; at most {MAX_PARTS} are possible")
    ref = concat_ref & 0xFF
    parts = [bytes([5, 0, 3, ref, len(chunks), i]) + c for i, c in enumerate(chunks, start=1)]
    return Encoded(coding, UDHI, parts)


def segments(body: str, *, concat_ref: int = 0) -> list[bytes]:
    """The ``short_message`` of each part (see :func:`encode`)."""
    return encode(body, concat_ref=concat_ref).parts


def part_count(body: str) -> int:
    return len(encode(body).parts)


# --------------------------------------------------------------- SMS or LMS (Korea)

SMS_MAX_BYTES = 90  # a Korean carrier's SMS: 90 bytes of EUC-KR; longer goes as LMS


def euckr_bytes(body: str) -> int:
    """The body's length as Korean carriers count it: EUC-KR bytes — a Hangul syllable
    or a full-width symbol 2, ASCII 1. Counted in CP949 (EUC-KR's superset, which
    carriers take): a syllable EUC-KR lacks (똠) is 2 bytes there, not the 8 of an
    EUC-KR composition sequence; a character neither has (an emoji) counts 2."""
    total = 0
    for ch in body:
        try:
            total += len(ch.encode("cp949"))
        except UnicodeEncodeError:
            total += 2
    return total


def sms_format(body: str) -> str:
    """``SMS`` when the body fits 90 EUC-KR bytes, else ``LMS``."""
    return "SMS" if euckr_bytes(body) <= SMS_MAX_BYTES else "LMS"
