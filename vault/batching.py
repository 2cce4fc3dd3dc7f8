"""Group commit (and read coalescing): concurrent callers share one round trip.

A database commit (an fsync) costs far more than encrypting a card, and SQLite has one
writer at a time, so one card per transaction tops out at about a thousand per second.
:class:`GroupCommit` queues each write with a future; one drain task takes up to
``max_batch`` queued writes, hands them to ``flush`` (one transaction) and resolves the
futures with the per-item results. A lone caller waits no longer than before; under load
batches grow by themselves. If ``flush`` fails, every write of that batch gets the
error (nothing of the batch was committed).

The store batches audited reads (a decrypt's record read and audit row) the same way,
and coalesces concurrent point reads into one ``SELECT … WHERE token IN (…)``: each
batch is one hop to a database thread instead of one per caller.

A caller cancelled while waiting does not cancel its write, which may still commit: the
item stays queued (or in flight) and only the caller's future is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 256,
        gather_turns: int = 4,
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._gather_turns = gather_turns
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await future  # cancelling the caller cancels this future only (see above)

    async def _drain(self) -> None:
        while self._queue:
            # Let callers that are ready to submit join this batch: yield to the event
            # loop while the queue keeps growing (a few turns at most, no timer).
            for _ in range(self._gather_turns):
                before = len(self._queue)
                await asyncio.sleep(0)
                if len(self._queue) in (before, 0) or len(self._queue) >= self._max_batch:
                    break
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                results = await self._flush([item for item, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException as exc:  # cancelled: fail the batch and the rest, then stop
                for _, future in batch + self._queue:
                    if not future.done():
                        future.set_exception(RuntimeError(f"write batch aborted: {exc!r}"))
                self._queue.clear()
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def close(self) -> None:
        """Wait for queued writes to finish."""
        if self._task is not None and not self._task.done():
            await self._task
