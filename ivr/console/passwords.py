"""argon2id password hashes (argon2-cffi's RFC 9106 low-memory profile).

Hashing costs tens of milliseconds of CPU on purpose, so it runs in a thread: the
engine's event loop keeps answering calls while someone logs in.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ivr.console.errors import WeakPassword

MIN_LENGTH = 10

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory defaults
# Verified against when the email is unknown, so a wrong email costs the same time
# as a wrong password (no user enumeration by timing).
_DUMMY = _hasher.hash("not-a-password-of-anyone")


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a console password needs at least {MIN_LENGTH} characters")
    if len(set(password)) < 4:
        raise WeakPassword("a console password needs more than a few distinct characters")


async def hash_password(password: str) -> str:
    check_strength(password)
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (``None``: an unknown user, always false
    but just as slow)."""
    return await asyncio.to_thread(_verify, stored, password)


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
