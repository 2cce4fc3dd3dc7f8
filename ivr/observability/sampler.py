"""What a scrape reads before it answers: the gauges that are rows in the database
(queues, the DID pool), each PG account's breaker state, and the readiness checks.

Counters and histograms move as things happen; these gauges are set here, once per
scrape, from a few counting queries on indexed columns. When the database does not
answer, the gauges keep their last values and ``arspay_metrics_sample_errors_total``
goes up (``arspay_dependency_up{dependency="database"}`` says why).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from ivr.clock import Clock
from ivr.gateways.breaker import BreakerSnapshot, BreakerState
from ivr.observability import queries
from ivr.observability.readiness import Readiness
from ivr.observability.registry import Metrics
from ivr.observability.registry import account as account_label
from ivr.store.db import Database

log = logging.getLogger(__name__)


@dataclass
class Sampler:
    db: Database
    clock: Clock
    metrics: Metrics
    breakers: Callable[[], list[BreakerSnapshot]]
    readiness: Readiness | None = None
    timeout_s: float = 5.0
    did_cooldown: timedelta = timedelta(minutes=10)  # the pool's (dids.cooldown_minutes)

    async def sample(self) -> None:
        """Set the scrape-time gauges (never raises: a failed read is counted)."""
        self._breakers()
        if self.readiness is not None:
            await self.readiness.check()
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._rows()
        except Exception as exc:
            self.metrics.scrape_errors.inc()
            log.warning("metrics: database sampling failed (%s)", type(exc).__name__)

    def _breakers(self) -> None:
        gauge = self.metrics.breaker_state
        for b in self.breakers():
            for state in BreakerState:
                gauge.labels(account_label(b.name), state.value).set(1 if b.state is state else 0)

    async def _rows(self) -> None:
        m, now = self.metrics, self.clock.now()
        async with self.db.sessions() as s:
            for name, q in (await queries.queues(s, now)).items():
                m.queue_depth.labels(name).set(q.depth)
                m.queue_oldest.labels(name).set(q.oldest_age_s)
                m.queue_dead.labels(name).set(q.dead)
            pool = await queries.did_pool(s, now, self.did_cooldown)
        for status, n in pool.numbers.items():
            m.did_numbers.labels(status).set(n)
        m.did_leases.set(pool.active_leases)
        m.did_mobiles.set(pool.mobiles)
        m.did_utilisation.set(pool.max_mobile_utilisation)
