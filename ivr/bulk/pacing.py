"""The PG's rate limit for bulk charges: new charge requests start at most
``rate_per_s`` a second, however many rows are in flight.

(:class:`~ivr.jobs.pacing.Pacer` is the other pacing: when a polling worker looks for
work again.)
"""

from __future__ import annotations

import asyncio
import time


class RateLimit:
    def __init__(self, rate_per_s: float) -> None:
        self.rate_per_s = rate_per_s
        self._next_slot = 0.0

    async def wait(self) -> None:
        """Until this caller's start slot. A start due within a millisecond goes at
        once (sleeping that little costs more than it paces; the slots still add up to
        the rate)."""
        now = time.monotonic()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / self.rate_per_s
        if slot > now + 0.001:
            await asyncio.sleep(slot - now)
