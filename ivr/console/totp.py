"""Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): the console's second
factor, as every authenticator app computes it — HMAC-SHA1, 6 digits, 30-second steps.

Pure functions, no state: :mod:`ivr.console.mfa` keeps the secrets (encrypted) and the
last step each user used, so a code is accepted once (no replay within its window).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote, urlencode

STEP_S = 30
DIGITS = 6
WINDOW = 1  # steps accepted either side of now: a phone clock 30 s off still works
SECRET_BYTES = 20  # 160 bits, RFC 4226's recommended length for HMAC-SHA1


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def b32(secret: bytes) -> str:
    """The secret as people type it into an app: base32, no padding."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def hotp(secret: bytes, counter: int, digits: int = DIGITS) -> str:
    """RFC 4226 section 5.3: dynamic truncation of HMAC-SHA1(secret, counter)."""
    mac = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def step_at(unix_s: float) -> int:
    return int(unix_s // STEP_S)


def clean_code(code: str) -> str | None:
    """The code with spaces taken out, or None when it is not ``DIGITS`` digits."""
    code = code.replace(" ", "").strip()
    return code if len(code) == DIGITS and code.isascii() and code.isdigit() else None


def matching_step(secret: bytes, code: str, unix_s: float, *, after: int | None) -> int | None:
    """The time step whose code ``code`` is (within ``WINDOW`` of now and later than
    ``after``, the last step used), or None. Every candidate is compared in constant
    time, so the answer's timing says nothing about which digits were right."""
    cleaned = clean_code(code)
    if cleaned is None:
        return None
    now = step_at(unix_s)
    found = None
    for step in range(now - WINDOW, now + WINDOW + 1):
        if hmac.compare_digest(hotp(secret, step), cleaned) and (after is None or step > after):
            found = step if found is None else found
    return found


def otpauth_uri(secret: bytes, account: str, issuer: str) -> str:
    """The ``otpauth://totp/…`` URI an authenticator app reads from a QR code."""
    label = quote(f"{issuer}:{account}", safe="@:")
    query = urlencode({"secret": b32(secret), "issuer": issuer, "algorithm": "SHA1",
                       "digits": DIGITS, "period": STEP_S})  # fmt: skip
    return f"otpauth://totp/{label}?{query}"
