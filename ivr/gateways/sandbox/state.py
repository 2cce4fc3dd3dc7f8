"""What the sandbox's handlers share, stored on the aiohttp app under :data:`STATE`."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from aiohttp import web

from ivr.clock import SEOUL
from ivr.gateways.sandbox.config import SandboxConfig
from ivr.gateways.sandbox.ledger import Ledger
from ivr.gateways.sandbox.tokens import TokenStore


@dataclass
class SandboxState:
    config: SandboxConfig
    ledger: Ledger
    tokens: TokenStore
    rng: random.Random
    clock: Callable[[], float] = time.time
    faults: dict[str, int] = field(default_factory=lambda: {"http_500": 0, "dropped": 0})

    def now(self) -> int:
        return int(self.clock())

    def today(self) -> date:
        return datetime.fromtimestamp(self.clock(), SEOUL).date()

    def inject_500(self) -> bool:
        hit = self.config.error_rate > 0 and self.rng.random() < self.config.error_rate
        if hit:
            self.faults["http_500"] += 1
        return hit

    def inject_timeout(self) -> bool:
        return self.config.timeout_rate > 0 and self.rng.random() < self.config.timeout_rate


STATE = web.AppKey("sandbox_state", SandboxState)
