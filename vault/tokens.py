"""Vault tokens and card fingerprints.

A token is ``tok_`` + 24 base32 characters (120 random bits from the OS CSPRNG); it is
never derived from the card. A fingerprint is
``HMAC-SHA256(fingerprint_key, merchant_id || 0x00 || PAN)`` in hex: equal for the same
card at the same merchant, unrelated across merchants, and useless without the key
(which is separate from every KEK). The zero byte keeps ``("m1", "23…")`` and
``("m12", "3…")`` apart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Final

from vault.card import wipe
from vault.errors import InvalidRequest

TOKEN_PREFIX: Final = "tok_"  # noqa: S105 - a vault token prefix, not a password
TOKEN_RE: Final = re.compile(r"tok_[a-z2-7]{24}")


def new_token() -> str:
    return TOKEN_PREFIX + base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()


def check_token(token: str) -> None:
    if not TOKEN_RE.fullmatch(token):
        raise InvalidRequest("token must look like tok_ followed by 24 base32 characters")


class Fingerprinter:
    """Keyed card fingerprints. Holds the key in a ``bytearray`` wiped by :meth:`close`."""

    def __init__(self, key: bytearray) -> None:
        if len(key) < 32:
            raise ValueError("fingerprint key must be at least 256 bits")
        self._key = key

    def fingerprint(self, merchant_id: str, pan: str) -> str:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        msg = bytearray(merchant_id.encode("utf-8"))
        msg.append(0)
        msg.extend(pan.encode("ascii"))
        try:
            mac.update(msg)
        finally:
            wipe(msg)
        return mac.hexdigest()

    def close(self) -> None:
        wipe(self._key)
