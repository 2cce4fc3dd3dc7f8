"""Group commit: many callers' writes of one kind in one transaction.

Each caller awaits its own result, so a card's step is still committed before its next
request; what changes is that the cards reaching the same step while a transaction
runs share the next one (one writer at a time on SQLite: a transaction per card would
be the migration's ceiling)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - an item
R = TypeVar("R")


class Coalescer(Generic[I, R]):
    def __init__(
        self,
        flush: Callable[[list[I]], Awaitable[list[R]]],
        *,
        most: int = 256,
        window_s: float = 0.0,
    ) -> None:
        """``flush``: one transaction for the items, a result per item, in order;
        ``window_s``: how long a transaction waits for more callers before it starts."""
        self.flush, self.most, self.window_s = flush, most, window_s
        self._queue: list[tuple[I, asyncio.Future[R]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def __call__(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def settle(self) -> None:
        """Wait for the writes under way (a runner leaves none behind when it stops)."""
        while self._draining is not None and not self._draining.done():
            await asyncio.gather(self._draining, return_exceptions=True)
        if self._draining is not None and not self._draining.cancelled():
            self._draining.exception()  # its callers already have the error: retrieved, not logged

    async def _drain(self) -> None:
        try:
            await self._rounds()
        finally:  # stopped (cancelled): nobody is left waiting forever
            left, self._queue = self._queue, []
            for _, future in left:
                if not future.done():
                    future.set_exception(RuntimeError("the writer stopped"))

    async def _rounds(self) -> None:
        while self._queue:
            await asyncio.sleep(self.window_s)  # the callers ready by then join it
            batch, self._queue = self._queue[: self.most], self._queue[self.most :]
            try:
                results = await self.flush([item for item, _ in batch])
            except BaseException as exc:  # every caller of the batch gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
