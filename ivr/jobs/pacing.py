"""When a polling worker runs its next round.

The SMS and webhook dispatchers and the bulk runner find their work in tables. Polling
those tables every second costs an idle engine about 3 ms of CPU per worker per poll
(a claim transaction through SQLAlchemy), most of an idle engine's CPU (issue #10).

A :class:`Pacer` keeps a busy worker at ``busy_s`` and lets an idle one back off:
each round that finds nothing doubles the wait, up to ``idle_s``. Work made in this
process does not wait for the next poll: :class:`~ivr.store.db.Database` calls
:meth:`Pacer.wake` when one of its transactions commits rows into the worker's tables
(see ``Database.on_commit``). Work written by another process (a second engine node,
a CLI command) is found at the next poll, within ``idle_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


class Pacer:
    def __init__(self, busy_s: float = 1.0, idle_s: float = 5.0) -> None:
        if not 0 < busy_s <= idle_s:
            raise ValueError("need 0 < busy_s <= idle_s")
        self.busy_s = busy_s
        self.idle_s = idle_s
        self._delay = busy_s
        self._woken = asyncio.Event()
        self.wakes = 0  # wake() calls (tests, diagnostics)

    def wake(self) -> None:
        """Run the next round now (or, during a round, right after it)."""
        self.wakes += 1
        self._woken.set()

    def next_delay(self, found_work: bool) -> float:
        """The wait after a round: ``busy_s`` after work, doubling while idle."""
        self._delay = self.busy_s if found_work else min(self._delay * 2, self.idle_s)
        return self._delay

    async def wait(self, found_work: bool, stop: asyncio.Event | None = None) -> None:
        """Sleep until the next round: the delay has passed, :meth:`wake` was called
        (also during the round just done), or ``stop`` is set."""
        delay = self.next_delay(found_work)
        if not self._woken.is_set() and not (stop is not None and stop.is_set()):
            waiters = [asyncio.ensure_future(self._woken.wait())]
            if stop is not None:
                waiters.append(asyncio.ensure_future(stop.wait()))
            try:
                await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
        if self._woken.is_set():
            self._woken.clear()
            self._delay = self.busy_s  # woken: work is likely; poll at the busy pace

    async def run(
        self,
        round_: Callable[[], Awaitable[int]],
        stop: asyncio.Event,
        log: logging.Logger,
        what: str,
        *,
        pending: Callable[[], bool] = lambda: False,
    ) -> None:
        """Run rounds at this pace until ``stop``. ``round_`` returns how many items it
        tried; ``pending``: work known to be waiting besides (it keeps the busy pace). A
        round that raises is logged on the worker's ``log`` as ``what``'s, not raised: a database
        hiccup must not end the worker."""
        while not stop.is_set():
            tried = 0
            try:
                tried = await round_()
            except Exception:
                log.exception("%s round failed", what)
            await self.wait(tried > 0 or pending(), stop)
