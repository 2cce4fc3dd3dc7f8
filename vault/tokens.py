"""Vault tokens and card fingerprints.

A token is ``tok_`` + 24 base32 characters (120 random bits from the OS CSPRNG, one
``os.urandom`` call mapped through a table); it is never derived from the card. A fingerprint is
``HMAC-SHA256(fingerprint_key, merchant_id || 0x00 || PAN)`` in hex: equal for the same
card at the same merchant, unrelated across merchants, and useless without the key
(which is separate from every KEK). The zero byte keeps ``("m1", "23…")`` and
``("m12", "3…")`` apart.
"""

from __future__ import annotations

import os
import re
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from vault.card import wipe
from vault.errors import InvalidRequest

TOKEN_PREFIX: Final = "tok_"  # noqa: S105 - a vault token prefix, not a password
TOKEN_RE: Final = re.compile(r"tok_[a-z2-7]{24}")
TOKEN_CHARS: Final = 24
# Byte -> base32 character of its low 5 bits. 256 is a multiple of 32, so a uniform
# random byte gives a uniform character: 24 characters carry 120 random bits.
_BASE32: Final = bytes(b"abcdefghijklmnopqrstuvwxyz234567"[b & 31] for b in range(256))


def new_token() -> str:
    return TOKEN_PREFIX + os.urandom(TOKEN_CHARS).translate(_BASE32).decode("ascii")


def check_token(token: str) -> None:
    if not TOKEN_RE.fullmatch(token):
        raise InvalidRequest("token must look like tok_ followed by 24 base32 characters")


class Fingerprinter:
    """Keyed card fingerprints. The key is set once into an HMAC state that each call
    copies (no per-call key schedule); :meth:`close` wipes the ``bytearray`` key and
    drops the state."""

    def __init__(self, key: bytearray) -> None:
        if len(key) < 32:
            raise ValueError("fingerprint key must be at least 256 bits")
        self._key = key
        self._keyed: HMAC | None = HMAC(key, hashes.SHA256())

    def fingerprint(self, merchant_id: str, pan: str | bytes | bytearray | memoryview) -> str:
        """``pan`` as a ``str`` or, to avoid another copy of it, a view of ASCII digits
        (e.g. a slice of the record plaintext)."""
        if self._keyed is None:
            raise ValueError("fingerprinter is closed")
        mac = self._keyed.copy()
        mac.update(merchant_id.encode("utf-8"))
        mac.update(b"\0")
        mac.update(pan.encode("ascii") if isinstance(pan, str) else pan)
        return mac.finalize().hex()

    def close(self) -> None:
        self._keyed = None
        wipe(self._key)
