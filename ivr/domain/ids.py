"""Object ids: ``<prefix>_<ulid>``.

A ULID (48-bit millisecond time + 80 random bits, Crockford base32) sorts by creation
time, which is what cursor pagination needs, and carries no information about the
object beyond when it was made. Random bits come from ``secrets``.
"""

from __future__ import annotations

import re
import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

PREFIXES = frozenset(
    {
        "mer", "key", "cus", "did", "lse", "creq", "cses", "card", "bk", "bulk", "pi", "pa", "rf",
        "sch", "evt", "whe", "whd", "sms", "cns", "aud", "usr", "cmb", "cmg", "ntc", "atk",
    }
)  # fmt: skip


# Shaped like an id we issue (``pi_01M8J2…``, ``ord01M8J2…``, older ``ord_…``): a ULID can
# hold 13 digits in a row, which the webhook payload check must not take for a card
# number. (Merchant text never gets here unchecked: the free-text guard refuses such runs
# at input.)
_OBJECT_ID = re.compile(r"[a-z]{2,5}_[0-9A-Z]{10,40}|ord[0-9A-Z]{26}")
ORDER_PREFIX = "ord"


def is_object_id(value: str) -> bool:
    return _OBJECT_ID.fullmatch(value) is not None


def ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID string."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | secrets.randbits(80)
    out = []
    for _ in range(26):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{ulid()}"


def new_order_id() -> str:
    """Order id sent to the PG for one charge attempt (PortOne ``merchant_uid``):
    ``ord`` and a ULID, 29 letters and digits. No ``_``: Smartro's new module refuses
    any special character in ``merchant_uid`` (and every PG takes letters and digits up
    to 40). Ids issued before, ``ord_<ulid>``, stay valid where they are read."""
    return f"{ORDER_PREFIX}{ulid()}"
