"""What happens after an automatic charge fails (docs/product.md §8): retry later, or dunning.

- Only *soft* declines are retried (insufficient funds, limit, temporary issuer or PG
  errors); a *hard* decline goes to dunning at once — a payment call request so the
  payer can pay with another card. An *unclassified* decline (wording no table knows)
  is soft but retried once per cycle only.
- Retries follow offsets from the cycle's first failure (default +1 d, +3 d, +7 d), at
  most ``max_attempts`` charges per cycle (default 4 = the first try + 3 retries).
- The card network caps retries of one card: Visa allows 15 attempts in 30 days; a
  retry that would exceed the cap goes to dunning instead.

Pure functions of the attempt history: the scheduler stores attempts, this decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from ivr.errors import InvalidInput

NETWORK_CAPS: Final[dict[str, tuple[int, timedelta]]] = {
    # brand -> (attempts, window). Visa's rule is the one docs/product.md §8 names; the others
    # are kept at the same conservative cap until an acquirer says otherwise.
    "visa": (15, timedelta(days=30)),
    "mastercard": (15, timedelta(days=30)),
    "local": (15, timedelta(days=30)),
}
DEFAULT_CAP: Final = (15, timedelta(days=30))


class Next(StrEnum):
    retry = "retry"
    dunning = "dunning"


@dataclass(frozen=True)
class Decision:
    next: Next
    at: datetime | None = None  # when to retry
    reason: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    offsets_days: tuple[int, ...] = (1, 3, 7)
    max_attempts: int = 4
    network_caps: Mapping[str, tuple[int, timedelta]] = field(
        default_factory=lambda: dict(NETWORK_CAPS)
    )

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> RetryPolicy:
        """From a merchant's ``retry`` settings: ``{"offsets_days": [1, 3, 7],
        "max_attempts": 4}``."""
        raw = dict(raw or {})
        extra = set(raw) - {"offsets_days", "max_attempts"}
        if extra:
            raise InvalidInput(f"retry: unexpected keys {sorted(extra)}")
        offsets = raw.get("offsets_days", [1, 3, 7])
        if (
            not isinstance(offsets, list)
            or len(offsets) > 10
            or any(type(o) is not int or not 1 <= o <= 60 for o in offsets)
            or offsets != sorted(set(offsets))
        ):
            raise InvalidInput("retry.offsets_days must be increasing whole days 1-60 (max 10)")
        attempts = raw.get("max_attempts", len(offsets) + 1)
        if type(attempts) is not int or not 1 <= attempts <= len(offsets) + 1:
            raise InvalidInput("retry.max_attempts must be 1 to len(offsets_days) + 1")
        return cls(offsets_days=tuple(offsets), max_attempts=attempts)


# A decline in words no table knows (ivr/gateways/declines.py): soft, so it is retried,
# but only this many times per cycle — it may well be a hard refusal in new words.
UNCLASSIFIED: Final = "unclassified"
UNCLASSIFIED_RETRIES: Final = 1


@dataclass(frozen=True)
class Attempt:
    at: datetime
    decline_kind: str | None  # soft | hard | None (succeeded)
    decline_reason: str | None = None  # the DeclineReason value, when known


def after_failure(
    policy: RetryPolicy,
    cycle: Sequence[Attempt],
    card_attempts: Sequence[datetime],
    *,
    brand: str,
    now: datetime,
) -> Decision:
    """Decide after the last attempt of ``cycle`` failed. ``card_attempts`` are the
    times of every charge attempt on this card (all cycles), for the network cap."""
    if not cycle:
        raise ValueError("after_failure needs the cycle's attempts")
    last = cycle[-1]
    if last.decline_kind != "soft":
        return Decision(Next.dunning, reason="hard decline: not retried")
    if len(cycle) >= policy.max_attempts:
        return Decision(Next.dunning, reason="retries used up")
    unclassified = sum(a.decline_reason == UNCLASSIFIED for a in cycle)
    if last.decline_reason == UNCLASSIFIED and unclassified > UNCLASSIFIED_RETRIES:
        return Decision(Next.dunning, reason="unclassified decline: retried once already")
    offset_index = len(cycle) - 1  # after the first failure, offsets[0] …
    if offset_index >= len(policy.offsets_days):
        return Decision(Next.dunning, reason="retries used up")
    at = cycle[0].at + timedelta(days=policy.offsets_days[offset_index])
    at = max(at, now)
    cap, window = policy.network_caps.get(brand, DEFAULT_CAP)
    in_window = [t for t in card_attempts if at - window < t <= at]
    if len(in_window) + 1 > cap:
        return Decision(Next.dunning, reason=f"network cap: {cap} attempts in {window.days} days")
    return Decision(Next.retry, at=at, reason=f"soft decline: retry {offset_index + 1}")
