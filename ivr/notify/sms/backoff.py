"""When a message that failed to send is tried again.

No column holds the next-attempt time: it is computed from ``created_at`` and
``attempts`` — attempt *n+1* is due ``sum(delay(1..n))`` after the message was
created, with ``delay(k) = min(base * 2**(k-1), cap)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 30.0
    cap_s: float = 1800.0

    def delay(self, attempt: int) -> timedelta:
        """Wait after failed attempt number ``attempt`` (1-based)."""
        return timedelta(seconds=min(self.base_s * 2 ** (attempt - 1), self.cap_s))

    def next_attempt_at(self, created_at: datetime, attempts: int) -> datetime:
        return created_at + sum((self.delay(k) for k in range(1, attempts + 1)), timedelta())
