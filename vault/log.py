"""Vault logging: ids, actions and error ids — nothing else, by construction.

:func:`event` takes an action word and a fixed set of id fields; a value that does not
look like an id (a short run of ``[A-Za-z0-9_.:=,-]``) is replaced by ``?``, so even a
mistaken call cannot put card data, a reason text or an exception message in a log.
"""

from __future__ import annotations

import logging
import re
from typing import Final

log = logging.getLogger("vault")

_ID: Final = re.compile(r"[A-Za-z0-9_.:=,-]{1,64}")
_ACTION: Final = re.compile(r"[a-z][a-z0-9_.-]{0,39}")


def _safe(value: str | int | float) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"{value:.6g}" if isinstance(value, float) else str(value)
    return value if _ID.fullmatch(value) and not value.isdigit() else "?"


def event(
    action: str,
    *,
    level: int = logging.INFO,
    token: str | None = None,
    merchant_id: str | None = None,
    kek_id: str | None = None,
    error_id: str | None = None,
    peer: str | None = None,
    count: int | None = None,
    seconds: float | None = None,
) -> None:
    if not log.isEnabledFor(level):
        return
    fields = {
        "token": token,
        "merchant": merchant_id,
        "kek": kek_id,
        "error": error_id,
        "peer": peer,
        "count": count,
        "seconds": seconds,
    }
    parts = [f"vault.{action if _ACTION.fullmatch(action) else '?'}"]
    parts += [f"{k}={_safe(v)}" for k, v in fields.items() if v is not None]
    log.log(level, " ".join(parts))
