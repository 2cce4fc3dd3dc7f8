"""Card data in memory: the :class:`CardData` value, its compact byte form, and wiping.

The record plaintext is ``0x01 | PAN | '|' | MMYY | '|' | YYMMDD-or-BRN`` in ASCII
(about 30 bytes). The card password is not part of it: nothing here can hold one.

Limits of Python (best effort, documented in docs/vault.md): the serialized plaintext
and data keys live in ``bytearray`` buffers that are overwritten with zeros after use,
but ``CardData`` fields are ``str`` (immutable, cannot be wiped, may be copied by the
interpreter), and the garbage collector, JSON decoding and the gateway's own buffers make
further copies. Wiping narrows the window; it does not make memory clean.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from vault.errors import IntegrityFailure

FORMAT: Final = 1
PAN_AT: Final = 1  # the PAN's offset in the record plaintext
_SEP: Final = ord("|")


@dataclass(frozen=True, repr=False)
class CardData:
    """A card as keyed by the payer. ``birth`` is YYMMDD, or a 10-digit business
    registration number (BRN) for a corporate card. ``repr`` shows BIN6 and last 4 only."""

    pan: str
    expiry: str
    birth: str

    @property
    def bin6(self) -> str:
        return self.pan[:6]

    @property
    def last4(self) -> str:
        return self.pan[-4:]

    @property
    def owner_type(self) -> str:
        return "corporate" if len(self.birth) == 10 else "personal"

    def __repr__(self) -> str:
        return f"CardData(pan={mask(self.pan)}, expiry=****, birth=******)"

    __str__ = __repr__


def mask(pan: str) -> str:
    """BIN6 + last 4 with the middle starred; short or odd input shows nothing."""
    if len(pan) < 13 or not pan.isdigit():
        return "*" * len(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


def encode(card: CardData) -> bytearray:
    """The record plaintext, written straight into a fresh ``bytearray``."""
    fields = (card.pan, card.expiry, card.birth)
    buf = bytearray(1 + sum(len(f) for f in fields) + len(fields) - 1)
    buf[0] = FORMAT
    i = 1
    for n, field in enumerate(fields):
        if n:
            buf[i] = _SEP
            i += 1
        for ch in field:
            buf[i] = ord(ch)
            i += 1
    return buf


def decode(buf: bytearray) -> CardData:
    """Parse a record plaintext (already authenticated by AES-GCM)."""
    if not buf or buf[0] != FORMAT or buf.count(_SEP) != 2:
        raise IntegrityFailure("vault record plaintext has an unknown format")
    first = buf.index(_SEP)
    second = buf.index(_SEP, first + 1)
    return CardData(
        pan=buf[1:first].decode("ascii"),
        expiry=buf[first + 1 : second].decode("ascii"),
        birth=buf[second + 1 :].decode("ascii"),
    )


def wipe(*buffers: bytearray | memoryview | None) -> None:
    """Overwrite buffers with zeros in place (same length, so no reallocation)."""
    for buf in buffers:
        if buf is not None and len(buf):
            buf[:] = bytes(len(buf))


_urandom_fd: int | None = None


def random_into(size: int) -> bytearray:
    """``size`` random bytes read straight into a ``bytearray`` (no ``bytes`` copy)."""
    global _urandom_fd  # one descriptor per process, opened on first use
    if _urandom_fd is None:
        _urandom_fd = os.open("/dev/urandom", os.O_RDONLY | os.O_CLOEXEC)
    buf = bytearray(size)
    got = 0
    with memoryview(buf) as view:
        while got < size:
            n = os.readv(_urandom_fd, [view[got:]])
            if n <= 0:
                raise OSError("short read from /dev/urandom")
            got += n
    return buf
