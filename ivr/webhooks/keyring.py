"""An endpoint's signing secrets, packed into its one ``secret`` column.

``whsec_NEW`` normally; for 24 h after a rotation ``whsec_NEW whsec_OLD@<unix expiry>``,
so messages carry both signatures while the merchant switches its receiver over.
Never returned by the API: the secret is shown once, when created or rotated.
"""

from __future__ import annotations

from datetime import datetime, timedelta

ROTATION_OVERLAP = timedelta(hours=24)


def active_secrets(stored: str, now: datetime) -> list[str]:
    """The secrets to sign with now: the current one first."""
    current, *rest = stored.split()
    out = [current]
    for item in rest:
        secret, _, until = item.partition("@")
        if until.isdigit() and int(until) > now.timestamp():
            out.append(secret)
    return out


def rotated(stored: str, new: str, now: datetime) -> str:
    """The packed value after rotating to ``new``; the old current secret stays valid
    for :data:`ROTATION_OVERLAP` (older ones are dropped)."""
    current = stored.split()[0]
    until = int((now + ROTATION_OVERLAP).timestamp())
    return f"{new} {current}@{until}"
