"""Time as the vault sees it: a :class:`VaultClock` it is given, never the wall clock directly.

A protocol rather than the engine's class, so the vault imports nothing from ``ivr``:
the engine's clocks (``ivr.clock.SystemClock``, ``FakeClock``) satisfy it structurally
and are passed in as they are. The vault only ever asks the time (its checkpoint loop
sleeps on asyncio itself); :class:`WallClock` is the default when nobody passes one
(``arspay vault serve``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

SEOUL = ZoneInfo("Asia/Seoul")
"""Card expiry is judged in Korean time."""


class VaultClock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC now."""
        ...


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)
