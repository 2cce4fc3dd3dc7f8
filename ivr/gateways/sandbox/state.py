"""What the sandbox's handlers share, stored on the aiohttp app under :data:`STATE`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TypeVar

from aiohttp import web

from ivr.clock import SEOUL
from ivr.gateways.sandbox.config import SandboxConfig
from ivr.gateways.sandbox.faults import FaultPlan
from ivr.gateways.sandbox.ledger import Ledger
from ivr.gateways.sandbox.tokens import TokenStore

T = TypeVar("T")


@dataclass
class SandboxState:
    config: SandboxConfig
    ledger: Ledger
    tokens: TokenStore
    plan: FaultPlan
    clock: Callable[[], float] = time.time
    background: set[asyncio.Task[object]] = field(default_factory=set)

    def now(self) -> int:
        return int(self.clock())

    def today(self) -> date:
        return datetime.fromtimestamp(self.clock(), SEOUL).date()

    async def finish(self, work: Awaitable[T]) -> T:
        """Run ``work`` to its end even when the client hangs up meanwhile: a PG that
        started processing a request finishes it whether or not anyone hears the answer."""
        task: asyncio.Task[T] = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return await asyncio.shield(task)


STATE = web.AppKey("sandbox_state", SandboxState)
