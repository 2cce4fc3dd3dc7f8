"""Key version ids: ``v<version>-<8 hex>``, e.g. ``v3-9f1c04ab``.

The version orders keys (the newest is current); the random suffix keeps a key made by
a re-initialised key store from being mistaken for an older key with the same version.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from typing import Final

KEY_ID_RE: Final = re.compile(r"v([1-9][0-9]{0,8})-[0-9a-f]{8}")


def is_key_id(value: str) -> bool:
    return KEY_ID_RE.fullmatch(value) is not None


def key_version(key_id: str) -> int:
    m = KEY_ID_RE.fullmatch(key_id)
    if not m:
        raise ValueError("not a key id")
    return int(m.group(1))


def next_key_id(existing: Iterable[str]) -> str:
    version = max((key_version(k) for k in existing if is_key_id(k)), default=0) + 1
    return f"v{version}-{secrets.token_hex(4)}"


def newest(ids: Iterable[str]) -> str | None:
    valid = [k for k in ids if is_key_id(k)]
    return max(valid, key=key_version) if valid else None
