"""A guess at a card's network, issuer and type from its first digits.

The network comes from the public IIN ranges. The issuer table is a small sample for
tests and the demo, not a BIN file: an operator who needs real issuer names loads the
acquirer's BIN table, and the PG's answer to a billing-key request is authoritative.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class BinInfo:
    brand: str  # card network: visa, mastercard, amex, jcb, unionpay, diners, local, unknown
    issuer: str | None  # Korean issuer name when the sample table knows the BIN
    card_type: str | None  # credit | check, when known


# (prefix, issuer, card_type). Longest prefix wins. Sample entries only (see above).
_ISSUERS: Final[tuple[tuple[str, str, str], ...]] = (
    ("401288", "테스트카드", "credit"),  # the usual Visa test card 4012 8888 8888 1881
    ("411111", "테스트카드", "credit"),  # Visa test card 4111 1111 1111 1111
    ("555555", "테스트카드", "check"),  # Mastercard test card 5555 5555 5555 4444
    ("400000", "테스트카드", "credit"),  # sandbox PG scenario cards (docs/product.md §7)
)
assert all(len(prefix) <= 6 for prefix, _, _ in _ISSUERS)  # lookup() caches by BIN6


def _brand(pan: str) -> str:
    two, four = int(pan[:2]), int(pan[:4])
    if pan[0] == "4":
        return "visa"
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return "mastercard"
    if two in (34, 37):
        return "amex"
    if 3528 <= four <= 3589:
        return "jcb"
    if two in (36, 38, 39) or 300 <= int(pan[:3]) <= 305:
        return "diners"
    if two == 62:
        return "unionpay"
    if pan[0] == "9":
        return "local"  # Korean domestic-only cards
    return "unknown"


def lookup(pan: str) -> BinInfo:
    """Network from the IIN ranges; issuer and type from the sample table. Both depend on
    the first six digits only, so answers are cached by BIN6 (never by card number)."""
    return _lookup_bin6(pan[:6])


@functools.lru_cache(maxsize=4096)
def _lookup_bin6(bin6: str) -> BinInfo:
    issuer: str | None = None
    card_type: str | None = None
    best = 0
    for prefix, name, kind in _ISSUERS:
        if bin6.startswith(prefix) and len(prefix) > best:
            issuer, card_type, best = name, kind, len(prefix)
    return BinInfo(brand=_brand(bin6), issuer=issuer, card_type=card_type)
