"""The rows a :class:`~ivr.bulk.charges.ChargeWorker` loop has in flight, and the PG
answers waiting for the loop to settle them in its next transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from ivr.payments.batch import Answer
from ivr.store.tables import Job

Answered = tuple[Job, Answer, dict[str, Any]]  # a row, its answer, its payload note


class Flow:
    def __init__(self) -> None:
        self.in_flight = 0  # rows started and not settled (or finished) yet
        self.answers: list[Answered] = []
        self._arrived = asyncio.Event()

    def start(self, tg: asyncio.TaskGroup, work: Awaitable[Answered | None]) -> None:
        """Run one row's work as a task (it must not raise); the row is in flight until
        the work is done or, if it returns an answer, until that is settled."""
        self.in_flight += 1

        async def run() -> None:
            answered = None
            try:
                answered = await work
            finally:
                if answered is None:
                    self.in_flight -= 1
                else:
                    self.answers.append(answered)
                self._arrived.set()

        tg.create_task(run())

    def take_answers(self) -> list[Answered]:
        taken, self.answers = self.answers, []
        self.in_flight -= len(taken)
        return taken

    async def wait(self, timeout_s: float) -> None:
        """Until an answer comes back or a row finishes (or ``timeout_s``)."""
        if not self.answers:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._arrived.wait()
            except TimeoutError:
                pass
        self._arrived.clear()
