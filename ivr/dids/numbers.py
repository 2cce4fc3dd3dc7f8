"""Parse operator input naming DIDs: ranges (``0505-000-0000..0505-000-0999``) and lists
(``0505-000-0001,0505-000-0002`` or one per argument)."""

from __future__ import annotations

from collections.abc import Iterable

from ivr.errors import InvalidInput
from ivr.phone import NumberKind, PhoneError, normalize

DID_KINDS = frozenset(
    {NumberKind.virtual, NumberKind.landline, NumberKind.internet, NumberKind.service}
)
MAX_IMPORT = 100_000


def _one(raw: str) -> str:
    try:
        return normalize(raw, allow=DID_KINDS).digits
    except PhoneError as exc:
        raise InvalidInput(f"DID {raw.strip()!r}: {exc}") from None


def parse_dids(specs: Iterable[str]) -> list[str]:
    """Every DID named by ``specs``, normalized to digits, in order, without repeats."""
    out: dict[str, None] = {}
    for spec in specs:
        for part in spec.replace("\n", ",").split(","):
            part = part.strip()
            if not part:
                continue
            if ".." in part:
                first, _, last = part.partition("..")
                lo, hi = _one(first), _one(last)
                if len(lo) != len(hi):
                    raise InvalidInput(f"range {part!r}: both ends must have the same length")
                if int(hi) < int(lo):
                    raise InvalidInput(f"range {part!r}: the end comes before the start")
                if int(hi) - int(lo) + 1 + len(out) > MAX_IMPORT:
                    raise InvalidInput(f"at most {MAX_IMPORT} numbers per import")
                for n in range(int(lo), int(hi) + 1):
                    out[_one(str(n).zfill(len(lo)))] = None
            else:
                out[_one(part)] = None
            if len(out) > MAX_IMPORT:
                raise InvalidInput(f"at most {MAX_IMPORT} numbers per import")
    if not out:
        raise InvalidInput("no DID given")
    return list(out)
