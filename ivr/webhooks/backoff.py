"""When a failed delivery is tried again.

Attempt *n* (1-based) is followed, if it fails, by a wait of ``DELAYS[n-1]`` (the last
value repeats) with ±10 % jitter, so that attempts are spread over ``retry_hours``
(26 h by default): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, then the remainder. The
nominal start of attempt *n* is the sum of the waits before it; the last wait is cut
short so the final attempt falls at ``retry_hours``, after which the delivery fails.
"""

from __future__ import annotations

import random
from datetime import timedelta

DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
JITTER = 0.1


def nominal_delay(attempt: int) -> timedelta:
    return DELAYS[min(attempt, len(DELAYS)) - 1]


def nominal_offset(attempt: int) -> timedelta:
    """Nominal time from the first attempt to attempt ``attempt`` (without the cut)."""
    return sum((nominal_delay(k) for k in range(1, attempt)), timedelta())


def next_delay(
    attempts: int, retry_hours: float, rng: random.Random | None = None
) -> timedelta | None:
    """Wait after ``attempts`` failed attempts, or None when the delivery gives up."""
    window = timedelta(hours=retry_hours)
    spent = nominal_offset(attempts)
    if spent >= window:
        return None
    wait = min(nominal_delay(attempts), window - spent)
    factor = 1 + (rng or random).uniform(-JITTER, JITTER)
    return wait * factor


def schedule(retry_hours: float) -> list[timedelta]:
    """Nominal offsets of every attempt from the first one (for docs and tests)."""
    out = [timedelta()]
    attempts = 1
    window = timedelta(hours=retry_hours)
    while out[-1] < window:
        out.append(min(out[-1] + nominal_delay(attempts), window))
        attempts += 1
    return out
